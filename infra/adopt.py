"""Redeploy prod after `cdk destroy` by adopting what it kept (canonical_infra/adopt.py explains why).

    cd infra
    cdk synth -c env=prod <your other -c flags>          # writes cdk.out/
    ../.venv/bin/python adopt.py -c env=prod <the same flags>

It writes `cdk.out/adopt/<stack>.json` for each stack with retained resources that exist in the account
(the credentials in your shell) and prints the `cdk import` commands to run, in order, before `cdk deploy
--all`. It changes nothing itself.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import boto3
from canonical_infra.adopt import AccountLookup, AdoptError, read_templates, resource_mappings, write_mappings

# Import order: a stack before the stacks that reference it.
STACK_ORDER = ("Network", "Data", "Orchestration", "Api", "Monitoring")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cdk-out", type=Path, default=Path("cdk.out"), help="the cloud assembly `cdk synth` wrote"
    )
    parser.add_argument("--region", help="default: the templates' region, else your AWS configuration's")
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="repeated in the printed cdk commands (pass what you synthesized with)",
    )
    args = parser.parse_args(argv)
    if not (args.cdk_out / "manifest.json").exists():
        parser.error(f"{args.cdk_out}/manifest.json not found: run `cdk synth` with your -c flags first")

    templates = read_templates(args.cdk_out)
    session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
    try:
        mappings = resource_mappings(templates, AccountLookup(session.client))
    except AdoptError as exc:
        print(f"adopt: {exc}", file=sys.stderr)
        return 1
    if not mappings:
        print("Nothing retained exists in this account: `cdk deploy --all` creates everything.")
        return 0
    written = write_mappings(mappings, args.cdk_out / "adopt")
    flags = " ".join(f"-c {shlex.quote(c)}" for c in args.context)
    print("Retained resources found; adopt them, in this order, then deploy:\n")
    for stack in sorted(
        written, key=lambda s: next((i for i, p in enumerate(STACK_ORDER) if s.endswith(p)), 99)
    ):
        for logical_id, identifier in mappings[stack].items():
            print(f"  # {stack}/{logical_id}: {next(iter(identifier.values()))}")
        print(f"  cdk import {stack} --resource-mapping {written[stack]} {flags}".rstrip())
    print(f"  cdk deploy --all {flags}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
