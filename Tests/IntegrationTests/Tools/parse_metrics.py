#!/usr/bin/env python3
"""Parses Prometheus text format from stdin with prometheus_client's parser
(the reference Python one) and prints it as JSON: {family: {"type", "help",
"samples": [[name, labels, value], ...]}}. A malformed input exits 1 with the
parser's error; a missing prometheus_client exits 3."""
import json
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print(f"prometheus_client not installed: {e}", file=sys.stderr)
    sys.exit(3)

text = sys.stdin.read()
out = {}
try:
    for family in text_string_to_metric_families(text):
        if family.name in out:
            raise ValueError(f"family {family.name} appears twice")
        out[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, None if math.isnan(s.value) else s.value] for s in family.samples],
        }
except Exception as e:  # the parser raises ValueError and others on bad input
    print(f"not valid Prometheus text format: {e}", file=sys.stderr)
    sys.exit(1)
json.dump(out, sys.stdout, sort_keys=True)
