"""Property-based tests (Hypothesis): hostile strings in the catalogue and in another site's
manifest are either refused (InputError, one line naming file:line) or come out inert: the
rendered definition file keeps exactly its sections, the Dockerfile its instructions, every value
reads back as itself, a marker file never appears, and pull writes nothing outside its tree."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cryostack.app import store
from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.errors import BuildError, InputError
from cryostack.lint import hadolint_binary, lint_definition
from cryostack.publish import manifest as manifests
from cryostack.recipes import shell_quote
from cryostack.settings import BuildSettings
from cryostack.values import IDENTIFIER, printable_problem
from helpers import ROOT, SIF_HEADER

MARKER = Path(tempfile.gettempdir()) / f"cryostack-marker-{os.getpid()}"

# Pieces an attacker would try: quotes, command substitution, traversal, definition-file sections
# and stages, options, template syntax, very long text; and (below) line breaks, NUL, escapes and
# bidi controls. Printable pieces alone must often pass the models, so both kinds are drawn.
PRINTABLE = [
    "'", '"', "\\", "`", "$(touch {marker})", "`touch {marker}`", "$(id)", "${IFS}", "$HOME", "$",
    "../", "/..", "..", "/", "%setup", "%post", "Bootstrap: docker", "% ", "-", "--privileged", ";", "&&", "|", "#",
    " ", "=", ":", "@", "x" * 600, "é", "日本", "{{ 7*7 }}", "{% raw %}", "]]", "[[", "\\$", "\\\"", "relion",
    "/efs/x", "5.0.1", "-O3",
]
CONTROLS = ["\n", "\r\n", "\r", "\t", "\0", "\x1b[2J", "\x7f", "\x85", "\u202e", "\u2066", "\u2028", "\ufeff",
            "\n%setup\n    touch {marker}\n", "\nBootstrap: docker\n", "\\\n"]


def _hostile() -> st.SearchStrategy[str]:
    printable = st.lists(st.sampled_from(PRINTABLE), min_size=1, max_size=6)
    mixed = st.lists(st.one_of(st.sampled_from(PRINTABLE + CONTROLS), st.text(max_size=6)), min_size=1, max_size=6)
    return st.one_of(printable, printable, mixed).map(lambda parts: "".join(parts).replace("{marker}", str(MARKER)))


HOSTILE = _hostile()
EXPECTED_SECTIONS = ["%files", "%post", "%files", "%post", "%environment", "%labels", "%test", "%runscript"]
EXPECTED_INSTRUCTIONS = ["FROM", "SHELL", "RUN", "COPY", "COPY", "RUN", "FROM", "SHELL", "RUN", "COPY", "RUN", "ENV",
                         "LABEL", "CMD"]


# --- helpers that read the outputs the way their consumers do --------------------------------

def definition_sections(text: str) -> List[str]:
    """Apptainer's rule: a section starts at any line whose first word starts with '%'."""
    return [line.split()[0] for line in text.split("\n") if line.split()[:1] and line.split()[0].startswith("%")]


def definition_section(text: str, name: str) -> List[str]:
    lines, inside = [], False
    for line in text.split("\n"):
        words = line.split()
        if words[:1] and words[0].startswith("%"):
            inside = words[0] == name
        elif inside:
            lines.append(line)
    return lines


def definition_labels(text: str) -> Dict[str, str]:
    """%labels as Apptainer reads them: each line trimmed, split at the first space."""
    labels = {}
    for line in definition_section(text, "%labels"):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            labels[key] = value.strip()
    return labels


def dockerfile_instructions(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuation lines joined, comments skipped."""
    logical, current = [], ""
    for line in text.split("\n"):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        logical.append((word.upper(), rest))
        current = ""
    return logical


def dockerfile_pairs(arguments: str) -> Dict[str, str]:
    """NAME="value" pairs as Docker reads them: inside double quotes a backslash escapes '"', '\\' and '$'."""
    pairs, position = {}, 0
    pattern = re.compile(r'\s*([A-Za-z0-9_.\-/]+)="((?:[^"\\]|\\.)*)"')
    while position < len(arguments.rstrip()):
        match = pattern.match(arguments, position)
        assert match, f"not NAME=\"value\" pairs: {arguments[position:position + 80]!r}"
        pairs[match.group(1)] = re.sub(r'\\(["\\$])', r"\1", match.group(2))
        position = match.end()
    return pairs


# --- the catalogue --------------------------------------------------------------------------

def _rename(mapping: dict, old: str, new: str) -> None:
    items = list(mapping.items())
    mapping.clear()
    mapping.update((new if key == old else key, value) for key, value in items)


def _rename_variant(data: dict, value: str) -> None:
    _rename(data["variants"], "gcc-cuda86", value)
    for version in data["versions"].values():
        if version.get("variants"):
            version["variants"] = [value if v == "gcc-cuda86" else v for v in version["variants"]]


CATALOGUE_FIELDS: Dict[str, Callable[[dict, str], None]] = {
    "description": lambda d, v: d.update(description=v),
    "licence.name": lambda d, v: d["licence"].update(name=v),
    "licence.note": lambda d, v: d["licence"].update(note=v),
    "variant description": lambda d, v: d["variants"]["gcc-cuda86"].update(description=v),
    "cpu_flags": lambda d, v: d["variants"]["gcc-cpu"].update(cpu_flags=v),
    "target": lambda d, v: d["variants"]["gcc-cpu"].update(targets=[v]),
    "torch_home": lambda d, v: d["versions"]["5.0.1"]["model_weights"].update(torch_home=v),
    "smoke.command": lambda d, v: d["smoke"].update(command=v),
    "smoke.expect": lambda d, v: d["smoke"].update(expect=v),
    "command name": lambda d, v: d["commands"].__setitem__(0, v),
    "version key": lambda d, v: _rename(d["versions"], "5.0.1", v),
    "variant key": _rename_variant,
    "source.file": lambda d, v: d["versions"]["5.0.1"]["source"].update(file=v),
    "source.url": lambda d, v: d["versions"]["5.0.1"]["source"].update(url=v),
    "debian suite": lambda d, v: d["versions"]["3.1.3"]["source"]["debian"].update(suite=v),
    "version note": lambda d, v: d["versions"]["3.1.3"].update(note=v),
    "recipe": lambda d, v: d.update(recipe=v),
}


@pytest.fixture(scope="module")
def catalogue_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    for name in ("images", "recipes"):
        shutil.copytree(ROOT / name, root / name)
    return root


# A valid start for each field, so that a hostile tail often gets past the model's type.
PLAUSIBLE = {"torch_home": "/efs/", "smoke.command": "relion_refine ", "command name": "relion_", "cpu_flags": "-O2 -",
             "version key": "5.0.", "variant key": "gcc-", "source.file": "relion-", "source.url": "https://example.org/",
             "target": "c", "debian suite": "bookworm", "recipe": "relion"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(CATALOGUE_FIELDS)), value=HOSTILE, plausible=st.booleans())
def test_hostile_catalogue_text_is_refused_or_rendered_inert(catalogue_copy, field, value, plausible):
    if plausible:
        value = PLAUSIBLE.get(field, "") + value
    path = catalogue_copy / "images" / "relion.yaml"
    data = yaml.safe_load((ROOT / "images" / "relion.yaml").read_text())
    CATALOGUE_FIELDS[field](data, value)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=bool(hash(value) & 1))
    path.write_text(text, encoding="utf-8")
    try:
        images = planned_images(Project(catalogue_copy), BuildSettings(), "relion")
    except InputError as exc:
        event(f"refused ({field})")
        message = str(exc)
        assert "\n" not in message
        match = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
        assert match, f"refusal must name the catalogue file and line: {message}"
        assert 1 <= int(match.group(1)) <= text.count("\n") + 1
        return
    event(f"rendered ({field})")
    # Every entry is read as its consumers read it; the checks that start processes (the
    # definition checker, sh, bash -n) run on a few entries: one with model weights (TORCH_HOME), one
    # with a CPU guard.
    deep = {next((i.target.key for i in images if i.target.spec.model_weights), None), images[0].target.key,
            next((i.target.key for i in images if "cpu-guard.sh" in i.files), None)}
    for image in images:
        _assert_inert(image, value, image.target.key in deep)
    assert not MARKER.exists()


def _assert_inert(image, value: str, deep: bool) -> None:
    files, family, key = image.files, image.target.family, image.target.key
    definition = files["apptainer.def"]
    sections, instructions_expected = list(EXPECTED_SECTIONS), list(EXPECTED_INSTRUCTIONS)
    if "cpu-guard.sh" in files:  # the runtime stage also copies the guard in and links it (%files, COPY + RUN)
        sections.insert(3, "%files")
        at = instructions_expected.index("ENV")
        instructions_expected[at:at] = ["COPY", "RUN"]
    assert definition_sections(definition) == sections, key
    assert len(re.findall(r"(?mi)^bootstrap:", definition)) == 2
    labels = definition_labels(definition)
    assert labels["org.opencontainers.image.description"] == family.description.strip()
    assert labels["org.opencontainers.image.licenses"] == family.licence.name.strip()
    instructions = dockerfile_instructions(files["Dockerfile"])
    assert [name for name, _ in instructions] == instructions_expected, key
    docker_labels = dockerfile_pairs(dict(instructions)["LABEL"])
    assert docker_labels["org.opencontainers.image.description"] == family.description
    assert docker_labels["org.opencontainers.image.licenses"] == family.licence.name
    weights = family.versions[image.target.version].model_weights
    if weights:
        assert dockerfile_pairs(dict(instructions)["ENV"])["TORCH_HOME"] == weights.torch_home
    if deep:
        _assert_inert_when_run(files, key, value, weights)


def _assert_inert_when_run(files: Dict[str, str], key: str, value: str, weights) -> None:
    definition = files["apptainer.def"]
    with tempfile.TemporaryDirectory() as work:
        out = Path(work, "apptainer.def")
        out.write_text(definition, encoding="utf-8")
        # %test is the maintainer's shell code: a syntax error there is theirs, not an injection.
        # Template syntax in catalogue text is rendered verbatim, which the checker flags as such.
        findings = [f for f in lint_definition(out) if not f.message.startswith("%test:")
                    and not (f.code == "DEF-TEMPLATE" and ("{{" in value or "{%" in value))]
        assert findings == [], findings
        # The %environment section runs at every container start: run it, and read what it set.
        script = "\n".join(definition_section(definition, "%environment")) + "\nenv -0\n"
        run = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, env={"PATH": "/usr/bin:/bin"})
        assert run.returncode == 0, run.stderr
        environment = dict(item.split("=", 1) for item in run.stdout.decode().split("\0") if "=" in item)
    assert environment["CRYOSTACK_IMAGE"] == key
    if weights:
        assert environment["TORCH_HOME"] == weights.torch_home
    assert subprocess.run(["bash", "-n"], input=files["build.sh"], text=True, capture_output=True).returncode == 0
    if "cpu-guard.sh" in files:  # run in earnest by tests/unit/test_cpu_guard.py
        assert subprocess.run(["sh", "-n"], input=files["cpu-guard.sh"], text=True, capture_output=True).returncode == 0
        assert f"\n        {shell_quote(key)} " in files["cpu-guard.sh"]


@settings(max_examples=25, deadline=None)
@given(field=st.sampled_from(["description", "licence.name", "torch_home", "variant description"]), value=HOSTILE)
def test_hadolint_parses_every_rendered_dockerfile(catalogue_copy, field, value):
    path = catalogue_copy / "images" / "relion.yaml"
    data = yaml.safe_load((ROOT / "images" / "relion.yaml").read_text())
    CATALOGUE_FIELDS[field](data, value)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        image = planned_images(Project(catalogue_copy), BuildSettings(), "relion/5.0.1/gcc-cuda86")[0]
    except InputError:
        return
    result = subprocess.run([hadolint_binary(), "--config", str(ROOT / "recipes" / "hadolint.yaml"), "--format", "json",
                             "--no-fail", "-"], input=image.files["Dockerfile"], text=True, capture_output=True)
    findings = json.loads(result.stdout or "[]")
    assert [f for f in findings if f["level"] in ("error", "warning")] == [], findings


# --- another site's manifest -----------------------------------------------------------------

SIF_DATA = SIF_HEADER + bytes(range(256)) * 40
KEY = "hello/1.0/gcc-cpu"
FINGERPRINT = hashlib.sha256(b"hello").hexdigest()
RELPATH = f"images/{KEY}/{FINGERPRINT[:12]}.sif"
BASE = {
    "schema_version": 1, "generator": "cryostack 0.1.0", "updated": "2025-01-02T03:04:05Z",
    "images": {KEY: {
        "family": "hello", "version": "1.0", "variant": "gcc-cpu", "targets": ["c6i"], "accel": "cpu",
        "cuda_arch": None, "toolchain": "gcc", "commands": [{"name": "hello", "mpi": False}], "prefix": "/opt/hello",
        "smoke": {"command": "hello --version", "expect": "hello 1.0"},
        "licence": {"name": "MIT", "redistributable": True}, "fingerprint": FINGERPRINT,
        "sif": {"path": RELPATH, "sha256": hashlib.sha256(SIF_DATA).hexdigest(), "size": len(SIF_DATA)},
        "oci": {"registry": "registry.example:5000", "repository": "cryostack/hello", "digest": "sha256:" + "a" * 64,
                "references": ["registry.example:5000/cryostack/hello:1.0-gcc-cpu"], "pushed": True},
        "image": "cryostack/hello:1.0-gcc-cpu", "image_id": "sha256:" + "b" * 64,
        "labels": {"io.cryostack.prefix": "/opt/hello"}, "built": "2025-01-02T03:04:05Z",
        "published": "2025-01-02T03:04:05Z",
        "history": [{"fingerprint": "c" * 64, "published": "2024-12-01T00:00:00Z",
                     "sif": {"path": f"images/{KEY}/{'c' * 12}.sif", "sha256": "d" * 64, "size": 10}}],
    }},
}


def _locations(node, at=()) -> List[tuple]:
    """Every key path in a JSON document."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _locations(value, at + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _locations(value, at + (index,))
    return found


def _get(document, at):
    for part in at:
        document = document[part]
    return document


LOCATIONS = _locations(BASE)[1:]
STRING_LOCATIONS = [at for at in LOCATIONS if isinstance(_get(BASE, at), str)]
ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                       st.floats(allow_nan=False), st.just([]), st.just({}), st.just([{}]), HOSTILE)

MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(STRING_LOCATIONS), HOSTILE),
    st.tuples(st.just("set"), st.sampled_from(LOCATIONS), ODD_VALUES),
    st.tuples(st.just("delete"), st.sampled_from(LOCATIONS), st.none()),
    st.tuples(st.just("rekey"), st.just(("images", KEY)), HOSTILE),
)


def _mutate(document: dict, mutation) -> dict:
    kind, at, value = mutation
    document = copy.deepcopy(document)
    parent = _get(document, at[:-1])
    if kind == "set":
        parent[at[-1]] = value
    elif kind == "delete":
        del parent[at[-1]]
    else:
        parent[value] = parent.pop(at[-1])
    return document


def _snapshot(root: Path, skip: Path) -> dict:
    state = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        state[path] = ("link", os.readlink(path)) if path.is_symlink() else \
            (path.read_bytes() if path.is_file() else "dir")
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3), ascii_only=st.booleans())
def test_a_hostile_manifest_is_refused_or_pulled_inside_the_tree(mutations, ascii_only):
    document = BASE
    for mutation in mutations:
        try:
            document = _mutate(document, mutation)
        except (KeyError, IndexError, TypeError, AttributeError):
            pass  # an earlier mutation removed or replaced what this one aims at
    data = json.dumps(document, indent=2, ensure_ascii=ascii_only).encode()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = work / "site-a" / "manifest.json"
        (source.parent / RELPATH).parent.mkdir(parents=True)
        (source.parent / RELPATH).write_bytes(SIF_DATA)
        source.write_bytes(data)
        (work / "outside").mkdir()
        (work / "outside" / "secret").write_text("secret")
        tree = work / "site-b"
        before = _snapshot(work, tree)
        try:
            checked = manifests.load(data, str(source))
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and re.match(rf"{re.escape(str(source))}:\d+: ", message), message
            checked = None
        if checked is not None:
            _assert_confined(checked)
        event("refused" if checked is None else "accepted")
        try:
            store.pull(str(tree), str(source))
            pulled = True
            event("pulled")
        except InputError:
            assert checked is None, "pull refuses exactly what the model refuses"
            pulled = False
        except BuildError:  # a well-formed manifest whose file is missing or has other bytes
            assert checked is not None
            pulled = False
        assert _snapshot(work, tree) == before, "nothing outside the tree changes"
        assert not MARKER.exists()
        if pulled:
            local = json.loads((tree / "manifest.json").read_text())
            for key, entry in local["images"].items():
                sif = tree / entry["sif"]["path"]
                assert sif.resolve().is_relative_to(tree.resolve()) and sif.read_bytes() == SIF_DATA


def _assert_confined(checked: dict) -> None:
    """What a reader of a checked manifest can rely on."""
    for key, entry in checked["images"].items():
        assert key == f"{entry['family']}/{entry['version']}/{entry['variant']}"
        for name in [entry["family"], entry["version"], entry["variant"]] + [c["name"] for c in entry["commands"]]:
            assert re.fullmatch(IDENTIFIER.strip("^$"), name), name
        for sif in [entry["sif"]] + [old["sif"] for old in entry["history"]]:
            assert sif["path"].startswith(f"images/{key}/") and ".." not in sif["path"].split("/")
            assert os.path.normpath(os.path.join("/root", sif["path"])).startswith(f"/root/images/{key}/")
            assert re.fullmatch(r"[0-9a-f]{64}", sif["sha256"]) and isinstance(sif["size"], int) and sif["size"] >= 0
        references = (entry["oci"] or {}).get("references", []) + ([entry["image"]] if entry["image"] else [])
        assert all(not reference.startswith("-") for reference in references)
    for text in _strings(checked):
        assert printable_problem(text) is None, repr(text)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
