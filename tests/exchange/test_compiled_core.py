"""The compiled core (mypyc, see setup.py) is the same engine as its source: same bytes, never stale."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import time
import typing
from dataclasses import replace
from pathlib import Path

import pytest

import exchange
from benchmarks.workload import instrument as equity
from exchange import codec, declared
from exchange.commands import ListInstrument
from exchange.instrument import BondTerms, DayCount, InstrumentKind

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(exchange.__file__).resolve().parent

needs_build = pytest.mark.skipif(not exchange.COMPILED, reason="the core was installed without compiling it")

# Applies a seeded mixed workload (orders near the touch, cancels, marketable orders, amends, over 10 instruments) and
# prints the SHA-256 of every event's canonical bytes, whichever build of the core it imports.
EVENT_DIGEST = """
import hashlib
import exchange
from benchmarks.workload import TS0_US, mixed_commands, setup_commands
from exchange.codec import encode
from exchange.engine import Engine

accounts = tuple(f"inv{n:04d}" for n in range(50))
digest = hashlib.sha256()
engine = Engine()
seq = 0
for command in [*setup_commands(accounts=accounts), *mixed_commands(4_000, seed=7, accounts=accounts)]:
    seq += 1
    for event in engine.apply(seq, TS0_US + seq, command):
        digest.update(encode(event))
print(exchange.COMPILED, digest.hexdigest())
"""


def run_python(code: str, root: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter that imports the project from `root`."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_module_listed_for_compilation_is_a_module_of_the_core() -> None:
    # setup.py reads this list from exchange/__init__.py; a stale name would fail the build, a missing one is slow.
    assert len(set(exchange.COMPILED_MODULES)) == len(exchange.COMPILED_MODULES)
    assert all((PACKAGE / f"{name}.py").is_file() for name in exchange.COMPILED_MODULES)
    assert {"engine", "book", "orders", "accounts", "codec"} <= set(exchange.COMPILED_MODULES)


@needs_build
def test_the_installed_core_runs_compiled() -> None:
    from exchange import engine

    assert not Path(engine.__file__).name.endswith(".py")


@needs_build
def test_compiled_and_source_cores_give_identical_event_bytes() -> None:
    compiled = run_python(EVENT_DIGEST)
    source = run_python(EVENT_DIGEST, EXCHANGE_PURE="1")

    assert compiled.returncode == 0, compiled.stderr
    assert source.returncode == 0, source.stderr
    assert compiled.stdout.split()[0] == "True" and source.stdout.split()[0] == "False"
    assert compiled.stdout.split()[1] == source.stdout.split()[1]


@needs_build
def test_a_core_edited_after_its_build_runs_from_source_with_a_warning(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "exchange", ignore=shutil.ignore_patterns("__pycache__"))
    for shared in PACKAGE.parent.glob("*__mypyc.*"):
        shutil.copy2(shared, tmp_path / shared.name)
    edited = tmp_path / "exchange" / "engine.py"
    later = time.time() + 60
    os.utime(edited, (later, later))

    probe = run_python("import exchange, exchange.engine as e; print(exchange.COMPILED, e.__file__)", tmp_path)

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["False", str(edited)]
    assert "exchange/engine.py changed after it was compiled" in probe.stderr


def test_the_codec_reads_the_declared_field_types_of_every_record() -> None:
    # From source, the runtime annotations are the declared ones; compiled classes erase unions, and the codec must not
    # depend on which build runs.
    if exchange.COMPILED:
        probe = run_python(
            "import typing\n"
            "from exchange import codec, declared\n"
            "print(all(typing.get_type_hints(c) == declared.field_hints(c) for c in codec._TYPES.values()))",
            EXCHANGE_PURE="1",
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip() == "True"
    else:
        for cls in codec._TYPES.values():
            assert declared.field_hints(cls) == typing.get_type_hints(cls), cls


def test_a_bond_listing_decodes_with_its_nested_terms() -> None:
    terms = BondTerms(10_000, 31_250, 2, DayCount.ACT_ACT, dt.date(2025, 1, 15), dt.date(2030, 1, 15))
    listing = ListInstrument(replace(equity("GB30"), kind=InstrumentKind.BOND, bond=terms))

    decoded = codec.decode(codec.encode(listing))

    assert decoded == listing
    assert type(decoded.instrument.bond) is BondTerms
    assert hashlib.sha256(codec.encode(decoded)).digest() == hashlib.sha256(codec.encode(listing)).digest()
