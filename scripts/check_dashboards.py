#!/usr/bin/env python3
"""Offline check of the shipped Grafana dashboards and Prometheus alert rules.

    scripts/check_dashboards.py [--root DIR] [--metrics FILE_OR_URL]

Checks, with the Python standard library only:
- every deploy/grafana/dashboards/*.json parses, has a unique uid, a title, a
  schemaVersion, unique panel ids, grid positions inside the 24 columns, and every
  panel, query and template variable uses the Prometheus data source uid provisioned
  in deploy/grafana/provisioning/datasources/datasources.yaml;
- every dashboard query is valid PromQL: with Grafana's variables put in ($__rate_interval
  and the like -> 5m, $var -> .*), `promtool check rules` parses it (when promtool is
  installed; scripts/test.sh installs it);
- the dashboard provider (deploy/grafana/provisioning/dashboards/dashboards.yaml)
  reads the folder deploy/compose.yaml mounts the dashboards into, and prometheus.yml
  loads alerts.yml, which compose mounts beside it;
- every metric name in a PromQL expression (dashboard queries and template
  variables, alert rules, the series and expressions of the rule unit tests) is
  emitted by the code: a counter!/gauge!/histogram! call in crates/*/src (outside
  comments and #[cfg(test)] modules) names it, directly or through a &str const.
  Histograms are rendered by metrics-exporter-prometheus as summaries unless
  crates/tributary-platform/src/telemetry.rs configures buckets: `NAME{quantile=..}`,
  `NAME_sum` and `NAME_count` exist, `NAME_bucket` does not. Counters are exported
  under the exact name the code gives (no `_total` is added or removed). Series
  Prometheus makes itself (`up`, `scrape_*`) and the blackbox probe's `probe_*` are
  allowed. Label matchers and by/without/on/ignoring labels must be labels the code
  puts on that metric; `job` must name a scrape job of prometheus.yml, `quantile` one
  of the exporter's quantiles, and an exact-match value of any other label must occur
  as a string literal in the code (except values computed at run time: HTTP status and
  method, the build version).

With --metrics (a saved /metrics text, or the URL of a running process's /metrics), also
requires every series name the dashboards and rules use to be in that text (the issue's
"exists in the /metrics output of a running `tributary up`"; it holds because every service
registers its series at zero at start, see crates/tributary-runtime/src/series.rs), and every
exact label value they select (`namespace="docs"`, `topic="audit-create-log"`) on a series of
that name, except the HTTP request labels known only once a request arrives (LIVE_AT_FIRST_USE).
The nextest test `up::dashboard_series_exist_in_a_fresh_up` runs this against a fresh `up`.

Fails (exit 1) with one line per problem naming the file, the dashboard panel or alert
rule, and the metric.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Quantiles PrometheusBuilder::new() renders for a summary (metrics-exporter-prometheus 0.17).
EXPORTER_QUANTILES = {"0", "0.5", "0.9", "0.95", "0.99", "0.999", "1"}
# Labels Prometheus attaches to every scraped series (target labels).
TARGET_LABELS = {"job", "instance"}
# Series that Prometheus itself (per scrape target) or the blackbox exporter produce.
EXTERNAL = {
    "up": "Prometheus (per scrape target)",
    "scrape_duration_seconds": "Prometheus (per scrape target)",
    "scrape_samples_scraped": "Prometheus (per scrape target)",
    "scrape_series_added": "Prometheus (per scrape target)",
    "probe_success": "blackbox exporter (job tributary-readyz)",
    "probe_duration_seconds": "blackbox exporter (job tributary-readyz)",
    "probe_http_status_code": "blackbox exporter (job tributary-readyz)",
}
# Label values the code computes at run time (not string literals): the HTTP status code and
# method of tributary_runtime::http, the build's version. Route values are literal paths.
COMPUTED_VALUES = {
    ("tributary_http_requests_total", "status"), ("tributary_http_requests_total", "method"),
    ("tributary_http_request_duration_seconds", "method"), ("tributary_build_info", "version"),
}
# Labels whose values exist only after the first event, so a fresh process has no series with
# them: tributary_runtime::http registers its request series per `service` only, because the
# method, route and status of a request are known when it arrives.
LIVE_AT_FIRST_USE = {
    ("tributary_http_requests_total", "method"), ("tributary_http_requests_total", "route"),
    ("tributary_http_requests_total", "status"), ("tributary_http_request_duration_seconds", "method"),
    ("tributary_http_request_duration_seconds", "route"),
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                    "__range_ms", "__dashboard", "__from", "__to"}


# --- the code's metrics ------------------------------------------------------------------


@dataclass
class Metric:
    name: str
    kind: str  # counter | gauge | histogram
    labels: set[str] | None = field(default_factory=set)  # None: not known statically
    where: list[str] = field(default_factory=list)


def blank_comments(src: str) -> tuple[str, str]:
    """Returns (code, shape): comments blanked in both; in `shape` string and char
    literals are blanked too (for brace matching). Offsets are preserved."""
    code, shape = list(src), list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int, both: bool) -> None:
        for k in range(a, b):
            if src[k] != "\n":
                shape[k] = " "
                if both:
                    code[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j, True)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j, True)
            i = j
        elif (m := re.match(r'(?:b?r)(#*)"', src[i:i + 80])) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i + m.end(), j - 1 - len(m.group(1)), False)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j, False)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:i + 12])
            if m:
                blank(i + 1, i + m.end() - 1, False)
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(code), "".join(shape)


def matching(shape: str, open_at: int) -> int:
    """Index of the bracket closing the one at `open_at` (in the string-blanked text)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for k in range(open_at, len(shape)):
        ch = shape[k]
        if ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return k
    return len(shape) - 1


def test_spans(code: str, shape: str) -> list[tuple[int, int]]:
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        spans.append((m.start(), matching(shape, m.end() - 1)))
    return spans


MACRO = re.compile(r"(?<![\w:])(?:::)?(?:metrics::)?(counter|gauge|histogram)!\s*\(")
CONST = re.compile(r"\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*\"([^\"]*)\"")


def scan_code(root: Path) -> tuple[dict[str, Metric], set[str], bool, list[str]]:
    """Metrics emitted by crates/*/src, every string literal there, whether the exporter
    is configured with histogram buckets, and problems found while reading."""
    problems: list[str] = []
    files = sorted(root.glob("crates/*/src/**/*.rs"))
    if not files:
        return {}, set(), False, [f"{root}/crates/*/src: no Rust sources found"]
    texts = {}
    consts: dict[str, dict[str, str]] = {}  # const name -> {crate: value}
    literals: set[str] = set()
    for f in files:
        src = f.read_text(encoding="utf-8")
        code, shape = blank_comments(src)
        spans = test_spans(code, shape)
        texts[f] = (code, shape, spans)
        crate = f.relative_to(root).parts[1]
        for m in CONST.finditer(code):
            if not any(a <= m.start() <= b for a, b in spans):
                consts.setdefault(m.group(1), {})[crate] = m.group(2)
        for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', code):
            if not any(a <= m.start() <= b for a, b in spans):
                literals.add(m.group(1))
    metrics: dict[str, Metric] = {}
    for f, (code, shape, spans) in texts.items():
        crate = f.relative_to(root).parts[1]
        rel = f.relative_to(root)
        for m in MACRO.finditer(code):
            if any(a <= m.start() <= b for a, b in spans):
                continue
            kind = m.group(1)
            close = matching(shape, m.end() - 1)
            args = code[m.end():close]
            line = code.count("\n", 0, m.start()) + 1
            a = re.match(r'\s*(?:"([^"]+)"|([A-Za-z_][\w:]*))\s*(?:,|$)', args)
            if not a:
                problems.append(f"{rel}:{line}: {kind}! call whose name is not a literal or a const")
                continue
            if a.group(1):
                name = a.group(1)
            else:
                ident = a.group(2).split("::")[-1]
                by_crate = consts.get(ident, {})
                name = by_crate.get(crate) or (next(iter(by_crate.values())) if len(by_crate) == 1 else None)
                if name is None:
                    problems.append(f"{rel}:{line}: {kind}!({a.group(2)}): no &str const {ident} found")
                    continue
            rest = args[a.end():]
            labels: set[str] | None = set(re.findall(r'"(\w+)"\s*=>', rest))
            ref = re.match(r"\s*&\s*([a-z_]\w*)\s*(?:\[\s*\.\.\s*(\d+)\s*\])?\s*$", rest)
            if ref:
                # `&labels` or `&labels[..N]`: the nearest `let labels = [("key", ..), ..]` above.
                lets = list(re.finditer(r"\blet\s+" + ref.group(1) + r"\s*=\s*\[", code[:m.start()]))
                if lets:
                    body = code[lets[-1].end() - 1:matching(shape, lets[-1].end() - 1)]
                    keys = re.findall(r'\(\s*"(\w+)"\s*,', body)
                    labels = set(keys[: int(ref.group(2))] if ref.group(2) else keys)
                else:
                    labels = None
            elif rest.strip() and not labels:
                labels = None
            where = f"{rel}:{line}"
            if name in metrics:
                old = metrics[name]
                if old.kind != kind:
                    problems.append(f"{where}: {name} is a {kind} here but a {old.kind} at {old.where[0]}")
                old.labels = None if old.labels is None or labels is None else old.labels | labels
                old.where.append(where)
            else:
                metrics[name] = Metric(name, kind, labels, [where])
    telemetry = root / "crates/tributary-platform/src/telemetry.rs"
    buckets = False
    if telemetry.exists():
        buckets = bool(re.search(r"\.set_buckets(?:_for_metric)?\s*\(", blank_comments(telemetry.read_text(encoding="utf-8"))[0]))
    return metrics, literals, buckets, problems


# --- PromQL --------------------------------------------------------------------------------


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]]  # (label, op, value)


@dataclass
class Parsed:
    selectors: list[Selector]
    grouping: set[str]
    variables: set[str]
    has_label_functions: bool


def read_string(s: str, i: int) -> tuple[str, int]:
    q, j, out = s[i], i + 1, []
    while j < len(s) and s[j] != q:
        if s[j] == "\\" and q != "`":
            out.append(s[j + 1: j + 2])
            j += 2
        else:
            out.append(s[j])
            j += 1
    return "".join(out), j + 1


def parse_promql(expr: str) -> Parsed:
    sels: list[Selector] = []
    grouping: set[str] = set()
    variables = set(re.findall(r"\$\{?(\w+)", expr)) | set(re.findall(r"\[\[(\w+)\]\]", expr))
    s = expr
    i, n = 0, len(s)

    def matchers(at: int) -> tuple[list[tuple[str, str, str]], int]:
        out, j = [], at + 1
        while j < n and s[j] != "}":
            m = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*').match(s, j)
            if m and j < n and s[m.end()] in "\"'`":
                value, j = read_string(s, m.end())
                out.append((m.group(1), m.group(2), value))
            elif (m2 := re.compile(r'\s*(["\'])').match(s, j)):  # a quoted metric name (UTF-8 form)
                value, j = read_string(s, m2.end() - 1)
                out.append(("__name__", "=", value))
            else:
                j += 1
            while j < n and s[j] in " ,\t\n":
                j += 1
        return out, j + 1

    while i < n:
        c = s[i]
        if c in "\"'`":
            _, i = read_string(s, i)
        elif c == "$":  # a Grafana variable: $name, ${name}, ${name:format}
            m = re.compile(r"\$(?:\{[^}]*\}|\w+)").match(s, i)
            i = m.end() if m else i + 1
        elif c == "[":
            i = s.find("]", i) + 1 or n
        elif c.isdigit() or (c == "." and i + 1 < n and s[i + 1].isdigit()):
            m = re.compile(r"[\w.+-]*").match(s, i)
            i = m.end() if m and m.end() > i else i + 1
            # `1e-3` is consumed whole; `5m` too.
        elif c == "{":
            ms, i = matchers(i)
            names = [v for (k, op, v) in ms if k == "__name__" and op == "="]
            if names:
                sels.append(Selector(names[0], [x for x in ms if x[0] != "__name__"]))
        elif c.isalpha() or c in "_:":
            m = re.compile(r"[A-Za-z_:][\w:]*").match(s, i)
            word, i = m.group(0), m.end()
            rest = s[i:].lstrip()
            if word.lower() in GROUPING:
                if rest.startswith("("):
                    start = s.index("(", i)
                    end = s.find(")", start)
                    grouping |= {x.strip() for x in s[start + 1:end].split(",") if x.strip()}
                    i = end + 1
            elif word.lower() in KEYWORDS or word in AGGREGATORS or rest.startswith("("):
                pass  # a function, an aggregation, an operator keyword
            else:
                ms: list[tuple[str, str, str]] = []
                j = i
                while j < n and s[j] in " \t\n":
                    j += 1
                if j < n and s[j] == "{":
                    ms, i = matchers(j)
                sels.append(Selector(word, ms))
        else:
            i += 1
    return Parsed(sels, grouping, variables, bool(re.search(r"\blabel_(replace|join)\s*\(", expr)))


# --- checking one expression -----------------------------------------------------------------


class Checker:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []
        self.metrics, self.literals, self.buckets, problems = scan_code(root)
        self.problems += problems
        self.jobs = self.scrape_jobs()
        self.used: set[str] = set()
        self.exprs = 0
        self.queries: list[tuple[str, str]] = []  # (where, expr) of dashboard queries
        self.selected: dict[tuple[str, str, str], str] = {}  # (name, label, value) -> first where

    def scrape_jobs(self) -> set[str]:
        path = self.root / "deploy/prometheus/prometheus.yml"
        if not path.exists():
            self.problems.append(f"{path}: missing")
            return set()
        return set(re.findall(r"^\s*-\s*job_name:\s*[\"']?([\w.-]+)", path.read_text(encoding="utf-8"), re.M))

    def resolve(self, name: str) -> tuple[Metric | None, str | None, str]:
        """(metric, suffix, error): the code's metric a series name belongs to."""
        if name in self.metrics:
            return self.metrics[name], None, ""
        for suffix in ("_sum", "_count", "_bucket"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in self.metrics:
                m = self.metrics[base]
                if m.kind != "histogram":
                    return None, None, f"{name}: {base} is a {m.kind}, it has no {suffix} series"
                if suffix == "_bucket" and not self.buckets:
                    return None, None, (f"{name}: the exporter renders {base} as a summary (no buckets "
                                        f"are configured in crates/tributary-platform/src/telemetry.rs); "
                                        f"use {base}{{quantile=\"0.99\"}}")
                return m, suffix, ""
        hint = difflib.get_close_matches(name, list(self.metrics) + list(EXTERNAL), n=1)
        more = f" (did you mean {hint[0]}?)" if hint else ""
        return None, None, f"metric {name} is not emitted by crates/*/src{more}"

    def check(self, where: str, expr: str, variables: set[str] | None = None) -> None:
        self.exprs += 1
        p = parse_promql(expr)
        if not p.selectors:
            self.problems.append(f"{where}: no metric in expression {expr!r}")
        if variables is not None:
            for v in sorted(p.variables - variables - GRAFANA_BUILTINS):
                self.problems.append(f"{where}: variable ${v} is not defined in the dashboard's templating")
        known: set[str] | None = set(TARGET_LABELS)
        for sel in p.selectors:
            self.used.add(sel.name)
            if sel.name in EXTERNAL:
                labels: set[str] | None = set(TARGET_LABELS)
            else:
                metric, suffix, err = self.resolve(sel.name)
                if metric is None:
                    self.problems.append(f"{where}: {err}")
                    known = None
                    continue
                labels = None if metric.labels is None else metric.labels | TARGET_LABELS
                if labels is not None and metric.kind == "histogram" and suffix is None:
                    labels = labels | ({"le"} if self.buckets else {"quantile"})
                if metric.kind == "histogram" and suffix is None and not self.buckets and not any(k == "quantile" for k, _, _ in sel.matchers):
                    self.problems.append(f"{where}: {sel.name} is a summary: select a quantile "
                                         f"({sel.name}{{quantile=\"0.99\"}}) or use {sel.name}_sum/_count")
            if known is not None:
                known = None if labels is None else known | labels
            for label, op, value in sel.matchers:
                if op == "=" and value and "$" not in value and label not in TARGET_LABELS | {"quantile", "le"}:
                    self.selected.setdefault((sel.name, label, value), where)
                if labels is not None and label not in labels:
                    self.problems.append(f"{where}: {sel.name} has no label {label!r} "
                                         f"(it has {', '.join(sorted(labels))})")
                elif label == "job" and op == "=" and value not in self.jobs:
                    self.problems.append(f"{where}: {sel.name}{{job=\"{value}\"}}: no scrape job "
                                         f"{value!r} in deploy/prometheus/prometheus.yml")
                elif label == "quantile" and value not in EXPORTER_QUANTILES:
                    self.problems.append(f"{where}: {sel.name}{{quantile=\"{value}\"}}: the exporter "
                                         f"renders quantiles {', '.join(sorted(EXPORTER_QUANTILES, key=float))}")
                elif (label not in TARGET_LABELS | {"quantile", "le"} and op == "=" and value and "$" not in value
                      and (re.sub(r"_(sum|count|bucket)$", "", sel.name), label) not in COMPUTED_VALUES
                      and value not in self.literals):
                    self.problems.append(f"{where}: {sel.name}{{{label}=\"{value}\"}}: no string literal "
                                         f"\"{value}\" in crates/*/src, so no series has that value")
        if known is not None and not p.has_label_functions:
            for label in sorted(p.grouping - known):
                self.problems.append(f"{where}: grouping by {label!r}, which no metric in the expression has")


# --- the files ---------------------------------------------------------------------------


def simple_yaml_items(text: str, list_key: str) -> list[dict[str, str]]:
    """The `key: scalar` pairs of each item of the top-level list `list_key` (enough for
    Grafana provisioning files)."""
    items: list[dict[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if re.match(rf"^{list_key}:\s*$", line):
            inside = True
            continue
        if inside and re.match(r"^\S", line):
            inside = False
        if not inside:
            continue
        m = re.match(r"^\s*(-\s+)?([\w.]+):\s*(.*)$", line)
        if not m:
            continue
        if m.group(1):
            items.append({})
        if items:
            items[-1].setdefault(m.group(2), m.group(3).strip().strip("\"'"))
    return items


def yaml_exprs(text: str, keys: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """(line, key, value) of every `key: value` (plain, quoted or block scalar)."""
    out = []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        m = re.match(r"^(\s*)(-\s+)?(" + "|".join(keys) + r"):\s*(.*)$", lines[k])
        if m:
            indent = len(m.group(1)) + (len(m.group(2)) if m.group(2) else 0)
            value = m.group(4).strip()
            if value[:1] in "|>":
                body = []
                j = k + 1
                while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                    body.append(lines[j].strip())
                    j += 1
                out.append((k + 1, m.group(3), " ".join(body)))
                k = j
                continue
            if value[:1] in "\"'":
                value = value[1:-1].replace("''", "'") if value[0] == "'" else json.loads(value)
            out.append((k + 1, m.group(3), value))
        k += 1
    return out


def rule_names(text: str) -> dict[int, str]:
    return {i + 1: m.group(1) for i, line in enumerate(text.splitlines())
            if (m := re.match(r"^\s*-\s*(?:alert|record):\s*(\S+)", line))}


def name_at(names: dict[int, str], line: int) -> str:
    before = [n for ln, n in names.items() if ln <= line]
    return before[-1] if before else "?"


def flatten(panels: list) -> list:
    out = []
    for p in panels:
        out.append(p)
        out += flatten(p.get("panels", []))
    return out


def check_dashboards(c: Checker) -> int:
    root = c.root
    ds_path = root / "deploy/grafana/provisioning/datasources/datasources.yaml"
    sources = simple_yaml_items(ds_path.read_text(encoding="utf-8"), "datasources") if ds_path.exists() else []
    prom_uids = {s.get("uid") for s in sources if s.get("type") == "prometheus" and s.get("uid")}
    if not prom_uids:
        c.problems.append(f"{ds_path}: no Prometheus data source with a uid")
    prov = root / "deploy/grafana/provisioning/dashboards/dashboards.yaml"
    compose = (root / "deploy/compose.yaml").read_text(encoding="utf-8") if (root / "deploy/compose.yaml").exists() else ""
    if not prov.exists():
        c.problems.append(f"{prov}: missing (Grafana would load no dashboard)")
    else:
        for item in simple_yaml_items(prov.read_text(encoding="utf-8"), "providers"):
            path = item.get("path", "")
            if not re.search(r"-\s*\./grafana/dashboards:" + re.escape(path) + r"(:ro)?\s*$", compose, re.M):
                c.problems.append(f"{prov}: provider {item.get('name')!r} reads {path!r}, but deploy/compose.yaml "
                                  f"does not mount ./grafana/dashboards there")
    folder = root / "deploy/grafana/dashboards"
    boards = sorted(folder.glob("*.json"))
    if not boards:
        c.problems.append(f"{folder}: no dashboards")
    uids: dict[str, Path] = {}
    panels_n = 0
    for path in boards:
        rel = path.relative_to(root)
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            c.problems.append(f"{rel}: not JSON: {e}")
            continue
        for key, typ in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list)):
            if not isinstance(board.get(key), typ):
                c.problems.append(f"{rel}: {key!r} missing or not a {typ.__name__}")
        if not isinstance(board.get("panels"), list):
            continue
        uid = board.get("uid")
        if uid in uids:
            c.problems.append(f"{rel}: uid {uid!r} is also the uid of {uids[uid]}")
        uids[uid] = rel
        title = board.get("title", rel.name)

        def ds_ok(ds, where: str) -> None:
            if not isinstance(ds, dict) or ds.get("uid") not in prom_uids:
                c.problems.append(f"{where}: data source {ds!r} is not the provisioned Prometheus "
                                  f"(uid {', '.join(sorted(prom_uids))})")

        variables = set()
        for v in board.get("templating", {}).get("list", []):
            variables.add(v.get("name"))
            if v.get("type") == "query":
                where = f"{rel} ({title}): variable ${v.get('name')}"
                ds_ok(v.get("datasource"), where)
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                m = re.match(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", q or "")
                if not m:
                    c.problems.append(f"{where}: query {q!r} is not label_values(SELECTOR, LABEL)")
                    continue
                c.check(where, m.group(1), variables)
                p = parse_promql(m.group(1))
                for sel in p.selectors:
                    metric = c.metrics.get(sel.name)
                    if metric and metric.labels is not None and m.group(2) not in metric.labels | TARGET_LABELS:
                        c.problems.append(f"{where}: {sel.name} has no label {m.group(2)!r}")
        ids: dict[int, str] = {}
        for panel in flatten(board["panels"]):
            panels_n += 1
            pid, ptitle = panel.get("id"), panel.get("title", "")
            where = f"{rel} ({title}): panel {pid} {ptitle!r}"
            if not isinstance(pid, int):
                c.problems.append(f"{where}: no integer id")
            elif pid in ids:
                c.problems.append(f"{where}: id {pid} is also the id of panel {ids[pid]!r}")
            else:
                ids[pid] = ptitle
            g = panel.get("gridPos", {})
            if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
                c.problems.append(f"{where}: gridPos {g} is not inside the 24 columns")
            if panel.get("type") == "row":
                continue
            ds_ok(panel.get("datasource"), where)
            targets = panel.get("targets") or []
            if not targets:
                c.problems.append(f"{where}: no query")
            refs = set()
            for t in targets:
                ds_ok(t.get("datasource", panel.get("datasource")), f"{where} query {t.get('refId')}")
                if t.get("refId") in refs:
                    c.problems.append(f"{where}: refId {t.get('refId')} used twice")
                refs.add(t.get("refId"))
                if not t.get("expr"):
                    c.problems.append(f"{where} query {t.get('refId')}: no expr")
                    continue
                c.check(f"{where} query {t.get('refId')}", t["expr"], variables)
                c.queries.append((f"{where} query {t.get('refId')}", t["expr"]))
    return panels_n


def check_syntax(c: Checker) -> str:
    """Parses every dashboard query with promtool (as recording rules)."""
    promtool = shutil.which("promtool")
    if not promtool:
        return "promtool not found: dashboard PromQL syntax not checked"
    lines = ["groups:"]
    for k, (_, expr) in enumerate(c.queries):
        e = re.sub(r"\$(__\w+|\{__\w+\})", "5m", expr)
        e = re.sub(r"\$\{[^}]*\}|\$\w+", ".*", e)
        lines += [f"  - name: q{k}", "    rules:", f"      - record: check:q{k}", f"        expr: {json.dumps(e)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    finally:
        Path(f.name).unlink()
    if out.returncode != 0:
        text = out.stdout + out.stderr
        bad = {int(m.group(1)): m.group(2) for m in re.finditer(r'group "q(\d+)".*?: (could not parse.*)', text)}
        for k, err in sorted(bad.items()):
            c.problems.append(f"{c.queries[k][0]}: {err}")
        if not bad:
            c.problems.append(f"promtool check rules on the dashboard queries failed: {text.strip()}")
    return f"{len(c.queries)} dashboard queries parsed by promtool"


def check_rules(c: Checker) -> int:
    root = c.root
    prom = root / "deploy/prometheus/prometheus.yml"
    alerts = root / "deploy/prometheus/alerts.yml"
    compose = (root / "deploy/compose.yaml").read_text(encoding="utf-8") if (root / "deploy/compose.yaml").exists() else ""
    if prom.exists() and not re.search(r"^rule_files:\s*\n(\s+-\s*.*\n)*\s+-\s*[\"']?alerts\.yml", prom.read_text(encoding="utf-8"), re.M):
        c.problems.append(f"{prom}: rule_files does not load alerts.yml")
    if not re.search(r"-\s*\./prometheus/alerts\.yml:/etc/prometheus/alerts\.yml(:ro)?\s*$", compose, re.M):
        c.problems.append("deploy/compose.yaml: the prometheus service does not mount ./prometheus/alerts.yml "
                          "at /etc/prometheus/alerts.yml")
    n = 0
    for path, keys in ((alerts, ("expr",)), (root / "deploy/prometheus/alerts_test.yml", ("expr", "series"))):
        if not path.exists():
            c.problems.append(f"{path}: missing")
            continue
        text = path.read_text(encoding="utf-8")
        names = rule_names(text) if path == alerts else {}
        rel = path.relative_to(root)
        for line, key, value in yaml_exprs(text, keys):
            what = f"rule {name_at(names, line)}" if names else key
            c.check(f"{rel}:{line} ({what})", value)
            n += key == "expr" and path == alerts
    return n


def exposed_series(source: str) -> dict[str, list[dict[str, str]]]:
    """Series in a Prometheus text exposition (a file path or an http(s) URL): name -> the
    label sets of its samples."""
    if re.match(r"^https?://", source):
        import urllib.request

        with urllib.request.urlopen(source, timeout=10) as r:  # noqa: S310 (operator-given URL)
            text = r.read().decode("utf-8")
    else:
        text = Path(source).read_text(encoding="utf-8")
    out: dict[str, list[dict[str, str]]] = {}
    for m in re.finditer(r"^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?[ ]", text, re.M):
        labels = {k: json.loads(f'"{v}"') for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")}
        out.setdefault(m.group(1), []).append(labels)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root (default: this script's repository)")
    ap.add_argument("--metrics", metavar="FILE_OR_URL",
                    help="also require every used series name in this /metrics text")
    args = ap.parse_args()
    c = Checker(args.root.resolve())
    panels = check_dashboards(c)
    rules = check_rules(c)
    syntax = check_syntax(c)
    live = ""
    if args.metrics:
        exposed = exposed_series(args.metrics)
        for name in sorted(c.used - set(EXTERNAL) - set(exposed)):
            c.problems.append(f"{args.metrics}: {name} is used by the dashboards or rules but not exposed")
        live = f"; {len(c.used - set(EXTERNAL))} series names and {len(c.selected)} selected label values checked in {args.metrics}"
        for (name, label, value), where in sorted(c.selected.items()):
            base = re.sub(r"_(sum|count|bucket)$", "", name) if name not in c.metrics else name
            if name in EXTERNAL or name not in exposed or (base, label) in LIVE_AT_FIRST_USE:
                continue
            if not any(s.get(label) == value for s in exposed[name]):
                c.problems.append(f"{args.metrics}: no {name} series has {label}=\"{value}\" "
                                  f"(selected by {where})")
    if c.problems:
        c.problems = list(dict.fromkeys(c.problems))
        for p in c.problems:
            print(f"check_dashboards: {p}", file=sys.stderr)
        print(f"check_dashboards: FAILED: {len(c.problems)} problem(s)", file=sys.stderr)
        return 1
    external = sorted(c.used & set(EXTERNAL))
    ours = c.used - set(EXTERNAL)
    print(f"check_dashboards: {len(list((c.root / 'deploy/grafana/dashboards').glob('*.json')))} dashboards "
          f"({panels} panels), {rules} alert rules and their unit tests: {c.exprs} expressions over "
          f"{len(ours)} series names, each emitted by crates/*/src"
          + (f" (plus {', '.join(external)} from Prometheus/blackbox)" if external else "") + f"; {syntax}"
          + (live if args.metrics else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
