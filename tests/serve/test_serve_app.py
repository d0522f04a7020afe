"""pretroost.serve: the page as a person uses it (Starlette's TestClient), bad input included."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the 'serve' extra is not installed")

from serving import toy_alloys
from starlette.testclient import TestClient

from pretroost.serve.app import create_app
from pretroost.serve.config import ServeConfig
from pretroost.serve.inputs import InputError, from_csv, from_text
from pretroost.serve.models import ModelEntry, ModelRegistry, UnknownModelError
from pretroost.serve.render import chart_svgs

SMALL = ServeConfig(max_upload_bytes=20_000, max_rows=50, max_formula_chars=40)


@pytest.fixture(scope="module")
def registry(trees_folder: Path, domain_model) -> ModelRegistry:
    """The saved trees model (as --model gives it) and the same with domain columns."""
    plain = ModelRegistry.from_sources([str(trees_folder)], shipped=False)
    entries = [plain.entry("alloy-strength"), ModelEntry("with-domain", "(test)", "domain")]
    loaded = {"alloy-strength": plain.get("alloy-strength"), "with-domain": domain_model}
    return ModelRegistry(entries, loaded=loaded)


@pytest.fixture(scope="module")
def client(registry: ModelRegistry) -> TestClient:
    return TestClient(create_app(registry, SMALL))


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr.*?</tr>", body, flags=re.S)


def test_the_form_offers_the_models_and_loads_only_local_assets(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert 'value="alloy-strength"' in r.text and 'value="with-domain"' in r.text
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # no CDN, nothing remote
    assert "default-src 'none'" in r.headers["content-security-policy"]
    for asset in ("/static/page.css", "/static/page.js", "/static/icon.svg"):
        assert asset in r.text and client.get(asset).status_code == 200


def test_predictions_keep_order_and_show_bad_rows_in_place(client: TestClient) -> None:
    formulas, _ = toy_alloys(3, seed=5)
    text = "\n".join([formulas[0], "Xx2O", "", formulas[1], "Fe" * 30, formulas[2]])
    r = client.post("/", data={"model": "alloy-strength", "formulas": text})
    assert r.status_code == 200
    rows = _rows(r.text)
    assert len(rows) == 5  # the blank line is skipped
    assert [("error-row" in row) for row in rows] == [False, True, False, True, False]
    assert "Xx2O" in rows[1] and "at most 40 allowed" in rows[3]
    assert "3 of 5 predicted" in r.text and "2 with an error" in r.text
    assert "<svg" in r.text and "± std" in r.text


def test_domain_columns_are_shown_whatever_the_model(client: TestClient) -> None:
    formulas, _ = toy_alloys(2, seed=6)
    text = "\n".join([formulas[0], "Fe0.7Co0.3", formulas[1]])
    r = client.post("/", data={"model": "with-domain", "formulas": text})
    assert r.status_code == 200
    assert "In domain" in r.text and "Nearest training compositions" in r.text
    rows = _rows(r.text)
    assert "elements never seen in training" in rows[1] and 'class="flag out"' in rows[1]
    assert rows[0].count("<li>") == 2  # the two nearest compositions, as a list
    assert "outside it" in r.text  # the chart's legend


def test_unknown_model_is_refused_listing_the_valid_ones(client: TestClient) -> None:
    r = client.post("/", data={"model": "nope", "formulas": "NaCl"})
    assert r.status_code == 400
    assert "unknown model &#39;nope&#39;; valid: alloy-strength, with-domain" in r.text
    r = client.post("/download", data={"model": "nope", "formulas": '["NaCl"]'})
    assert r.status_code == 400 and "valid: alloy-strength" in r.text


def test_empty_input_and_too_many_rows_get_a_clear_message(client: TestClient) -> None:
    r = client.post("/", data={"model": "alloy-strength", "formulas": " \n\n"})
    assert r.status_code == 400 and "no formulas given" in r.text
    r = client.post("/", data={"model": "alloy-strength", "formulas": "Fe\n" * 51})
    assert r.status_code == 413 and "51 formulas: at most 50 per request" in r.text
    r = client.post(
        "/download", data={"model": "alloy-strength", "formulas": json.dumps(["Fe"] * 51)}
    )
    assert r.status_code == 413
    r = client.post("/download", data={"model": "alloy-strength", "formulas": "Fe, Ni"})
    assert r.status_code == 400 and "JSON list" in r.text


def test_oversized_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    big = "Fe\n" * 10_000  # 30 kB > 20 kB
    r = client.post("/", data={"model": "alloy-strength", "formulas": big})
    assert r.status_code == 413 and "at most 20,000 bytes" in r.text
    r = client.post("/", files={"file": ("big.csv", b"formula\n" + b"Fe\n" * 10_000, "text/csv")})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b"x" * 1000

    r = client.post(
        "/", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413


def test_csv_upload_uses_the_formula_column_or_the_first(client: TestClient) -> None:
    formulas, _ = toy_alloys(3, seed=7)
    with_col = "id,formula\n" + "".join(f"{i},{f}\n" for i, f in enumerate(formulas))
    r = client.post("/", data={"model": "alloy-strength"},
                    files={"file": ("alloys.csv", with_col.encode(), "text/csv")})  # fmt: skip
    assert r.status_code == 200 and "column &#39;formula&#39; of alloys.csv" in r.text
    assert len(_rows(r.text)) == 3
    first = "composition,note\n" + "".join(f"{f},x\n" for f in formulas)
    r = client.post("/", files={"file": ("c.csv", first.encode(), "text/csv")})
    assert r.status_code == 200 and "first column (&#39;composition&#39;)" in r.text
    r = client.post("/", files={"file": ("bad.csv", b"formula\n\xff\xfe", "text/csv")})
    assert r.status_code == 400 and "not UTF-8" in r.text


def test_download_gives_the_table_as_csv(client: TestClient) -> None:
    formulas, _ = toy_alloys(2, seed=8)
    r = client.post("/", data={"model": "with-domain", "formulas": "\n".join([*formulas, "Xx2O"])})
    hidden = re.search(r'name="formulas" value="([^"]*)"', r.text)
    assert hidden is not None
    payload = hidden.group(1).replace("&#34;", '"').replace("&quot;", '"')
    r = client.post("/download", data={"model": "with-domain", "formulas": payload})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="predictions-with-domain.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["formula"] for row in rows] == [*formulas, "Xx2O"]
    assert list(rows[0])[-1] == "error" and "nearest" in rows[0] and rows[2]["error"]
    assert float(rows[0]["prediction"]) > 0 and not rows[0]["error"]


def test_markup_in_formulas_is_escaped(client: TestClient) -> None:
    r = client.post("/", data={"model": "alloy-strength", "formulas": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text


def test_other_hosts_are_refused_when_bound_to_loopback(registry: ModelRegistry) -> None:
    app = create_app(registry, SMALL, allowed_hosts=["127.0.0.1", "localhost"])
    c = TestClient(app, base_url="http://127.0.0.1:8000")
    assert c.get("/").status_code == 200
    assert c.get("/", headers={"host": "evil.example:8000"}).status_code == 400


def test_long_lists_get_a_histogram(client: TestClient) -> None:
    formulas, _ = toy_alloys(50, seed=9)
    r = client.post("/", data={"model": "with-domain", "formulas": "\n".join(formulas)})
    assert r.status_code == 200 and 'class="hist' not in r.text  # 50 <= 60: one line each
    import pandas as pd

    frame = pd.DataFrame({"formula": [f"F{i}" for i in range(100)],
                          "prediction": range(100), "std": 1.0, "error": None})  # fmt: skip
    chart = chart_svgs(frame, "regression")
    assert chart is not None and chart.kind == "histogram" and "hist" in chart.svgs["histogram"]


def test_models_load_once_however_many_threads_ask() -> None:
    calls: list[str] = []

    class Model:
        task_type = "regression"

    def slow_loader(source: str) -> Model:
        calls.append(source)
        time.sleep(0.2)
        return Model()

    reg = ModelRegistry([ModelEntry("a", "a", ""), ModelEntry("b", "b", "")], loader=slow_loader)
    got: list[object] = []
    threads = [
        threading.Thread(target=lambda n=n: got.append(reg.get("ab"[n % 2]))) for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == ["a", "b"] and reg.loads == 2
    assert len({id(m) for m in got}) == 2
    with pytest.raises(UnknownModelError, match="valid: a, b"):
        reg.get("c")


def test_shipped_encoders_without_a_head_are_not_offered(trees_folder: Path) -> None:
    import pretroost.pretrained

    reg = ModelRegistry.from_sources([str(trees_folder)])
    assert reg.default == "alloy-strength"
    for name, folder in pretroost.pretrained.shipped().items():
        kind = json.loads((folder / "config.json").read_text()).get("kind")
        assert (name in reg.names) == (kind != "pretrained")
    encoder = next(iter(pretroost.pretrained.shipped()), None)
    if encoder is not None:
        with pytest.raises(ValueError, match="without a property head"):
            ModelRegistry.from_sources([encoder], shipped=False)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        ModelRegistry.from_sources(["/no/such/model"], shipped=False)
    with pytest.raises(ValueError, match="no model can predict"):
        ModelRegistry([])


def test_input_readers() -> None:
    assert from_text("formula\nFe2O3\n\n NaCl \n", max_rows=5).formulas == ["Fe2O3", "NaCl"]
    one_col = from_csv(b"Fe2O3\nNaCl\n", "a.csv", max_rows=5)
    assert one_col.formulas == ["Fe2O3", "NaCl"] and "one per line" in one_col.source
    blank = from_csv(b"id,Formula\n1,Fe2O3\n2,\n", "b.csv", max_rows=5)
    assert blank.formulas == ["Fe2O3", ""]  # an empty cell stays a row (its error is shown)
    with pytest.raises(InputError, match="the file is empty"):
        from_csv(b"\n\n", "c.csv", max_rows=5)


def test_the_command_binds_to_loopback_and_warns_otherwise(
    trees_folder: Path, monkeypatch, caplog
) -> None:
    import uvicorn

    from pretroost.cli import main
    from tiny import capture_logs

    served: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append({"app": app, **kw}))
    capture_logs("pretroost.cli", caplog, monkeypatch)
    assert main(["serve", "--model", str(trees_folder), "--port", "8123"]) == 0
    assert served[-1]["host"] == "127.0.0.1" and served[-1]["port"] == 8123
    client = TestClient(served[-1]["app"], base_url="http://127.0.0.1:8123")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"host": "example.org"}).status_code == 400
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert main(["serve", "--model", str(trees_folder), "--host", "0.0.0.0"]) == 0
    assert served[-1]["host"] == "0.0.0.0"
    assert any("open to every machine" in r.getMessage() for r in caplog.records)
    assert main(["serve", "--model", "/no/such/folder"]) == 1
    assert main(["serve", "--model", str(trees_folder), "--max-rows", "0"]) == 1
