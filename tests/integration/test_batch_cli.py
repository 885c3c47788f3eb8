"""``python -m hydra batch`` in a subprocess over a simulated cluster: results out, progress on stderr,
bad input refused before anything is created."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from hydra.batch import BatchStore
from hydra.sim import SimCluster
from tests.integration.test_gateway_cli import cli_env, run


def test_batch_writes_every_row_with_its_answer(seed: SimCluster, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "city": c}) + "\n" for i, c in enumerate(["Oslo", "Lima", "Pune"] * 4)))
    out = tmp_path / "out.jsonl"
    done = run(["batch", str(source), "--template", "One fact about {city}.", "-o", str(out), "--model",
                "llama3.2:3b", "--max-tokens", "12"], cli_env(seed, tmp_path))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(12)]
    assert all(r["status"] == "done" and r["answer"] and r["node"] in ("light", "powerful") for r in rows)
    assert rows[1]["city"] == "Lima" and rows[1]["model"] == "llama3.2:3b"
    assert "12/12" in done.stderr and "done 12" in done.stderr and "12 done, 0 failed" in done.stderr


def test_batch_to_csv(seed: SimCluster, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,text\na,\"hello, world\"\nb,bye\n")
    out = tmp_path / "out.csv"
    done = run(["batch", str(source), "--template", "Say {text}", "-o", str(out), "--model", "llama3.2:3b",
                "--max-tokens", "5"], cli_env(seed, tmp_path))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["name"], r["text"], r["status"]) for r in rows] == [("a", "hello, world", "done"), ("b", "bye", "done")]


def test_bad_input_is_refused_and_creates_nothing(seed: SimCluster, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("q\ncaf\xe9\n".encode("latin-1"))
    env = cli_env(seed, tmp_path)
    done = run(["batch", str(source), "--template", "{q}", "-o", str(tmp_path / "o.jsonl")], env)
    assert done.returncode == 2 and "not UTF-8" in done.stderr
    source.write_text("q\nhello\n")
    done = run(["batch", str(source), "--template", "{question}", "-o", str(tmp_path / "o.jsonl")], env)
    assert done.returncode == 2 and "{question} is not a column" in done.stderr and "columns are: q" in done.stderr
    assert not (tmp_path / "o.jsonl").exists()
    db = Path(env["HYDRA_DB"])
    if db.exists():
        store = BatchStore(db)
        try:
            assert store.batches() == []
        finally:
            store.close()
