"""The code location by domain: each module builds one domain's Definitions (no resources: the code
location adds them once, from the environment), merged in pipeline_defs/definitions.py."""
