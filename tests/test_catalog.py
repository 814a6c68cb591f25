"""Naming models: catalog ids, .gguf paths, directories, hub ids, and the TOML catalog file."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.catalog import (
    BUNDLED,
    GEMMA3,
    SMOLLM2,
    Catalog,
    CatalogError,
    load_catalog_file,
    preset_key_env,
    spec_from_reference,
)

KNOWN = {s.id: s for s in BUNDLED}


# -- spec_from_reference ------------------------------------------------------


def test_catalog_id_returns_the_catalog_spec() -> None:
    assert spec_from_reference("smollm2-135m", KNOWN) is SMOLLM2
    assert spec_from_reference("  gemma3-270m ", KNOWN) is GEMMA3


def test_gguf_path_becomes_a_gguf_spec_with_an_absolute_location(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "tiny-model.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    spec = spec_from_reference("tiny-model.gguf", KNOWN)
    assert spec.source == "gguf"
    assert spec.id == "tiny-model"
    assert spec.name == "tiny-model.gguf"
    assert spec.location == str((tmp_path / "tiny-model.gguf").resolve())
    assert Path(spec.location).is_absolute()
    assert not spec.bundled


def test_missing_gguf_path_says_the_file_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(CatalogError, match="no such .gguf file") as info:
        spec_from_reference(str(missing), KNOWN)
    assert str(missing) in str(info.value)


def test_directory_becomes_a_dir_spec(tmp_path: Path) -> None:
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    spec = spec_from_reference(str(model_dir), KNOWN)
    assert spec.source == "dir"
    assert spec.id == "my-model"
    assert spec.location == str(model_dir.resolve())


def test_hub_id_becomes_a_hub_spec() -> None:
    spec = spec_from_reference("HuggingFaceTB/SmolLM2-135M-Instruct", KNOWN)
    assert spec.source == "hub"
    assert spec.id == spec.location == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_unknown_reference_names_everything_that_was_tried() -> None:
    with pytest.raises(CatalogError) as info:
        spec_from_reference("no-such-model", KNOWN)
    message = str(info.value)
    assert "'no-such-model'" in message
    assert "catalog id" in message
    assert "gemma3-270m, smollm2-135m" in message  # the known ids, so the user can pick one
    assert ".gguf file" in message
    assert "directory" in message
    assert "hub id" in message


def test_unknown_reference_without_a_catalog_says_none_are_known() -> None:
    with pytest.raises(CatalogError, match=r"known: \(none\)"):
        spec_from_reference("no-such-model")


@pytest.mark.parametrize("ref", ["", "   "])
def test_empty_reference_is_refused(ref: str) -> None:
    with pytest.raises(CatalogError, match="empty model reference"):
        spec_from_reference(ref, KNOWN)


def test_catalog_get_uses_ids_then_references(tmp_path: Path) -> None:
    catalog = Catalog.build()
    assert catalog.ids()[:2] == ["smollm2-135m", "gemma3-270m"]
    assert catalog.get("smollm2-135m") is SMOLLM2
    assert catalog.get(str(tmp_path)).source == "dir"
    with pytest.raises(CatalogError):
        catalog.get("no-such-model")


# -- the TOML catalog file -------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_catalog_file_is_parsed(tmp_path: Path) -> None:
    model_dir = tmp_path / "local-model"
    model_dir.mkdir()
    catalog_file = _write(
        tmp_path / "models.toml",
        f"""
[[model]]
id = "qwen"
name = "Qwen 0.5B"
location = "Qwen/Qwen2.5-0.5B-Instruct"
revision = "main"
description = "from the hub"

[[model]]
id = "local"
location = "{model_dir}"

[[model]]
id = "forced"
source = "hub"
location = "someone/some-model"
gguf_file = "some-model.Q4_0.gguf"
""",
    )
    qwen, local, forced = load_catalog_file(catalog_file)
    assert (qwen.id, qwen.name, qwen.source, qwen.location) == (
        "qwen", "Qwen 0.5B", "hub", "Qwen/Qwen2.5-0.5B-Instruct",
    )
    assert (qwen.revision, qwen.description, qwen.bundled) == ("main", "from the hub", False)
    assert (local.id, local.name, local.source, local.location) == ("local", "local", "dir", str(model_dir))
    assert (forced.source, forced.gguf_file) == ("hub", "some-model.Q4_0.gguf")


def test_relative_gguf_path_is_resolved_against_the_catalog_files_folder(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "catalogs"
    (folder / "weights").mkdir(parents=True)
    catalog_file = _write(
        folder / "models.toml", '[[model]]\nid = "mine"\nlocation = "weights/mine.gguf"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the catalog's folder: the path must not depend on the cwd
    (spec,) = load_catalog_file(catalog_file)
    assert spec.source == "gguf"
    assert spec.location == str((folder / "weights" / "mine.gguf").resolve())


def test_absolute_gguf_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs.gguf"
    catalog_file = _write(tmp_path / "models.toml", f'[[model]]\nid = "abs"\nlocation = "{target}"\n')
    (spec,) = load_catalog_file(catalog_file)
    assert spec.location == str(target)


def test_empty_catalog_file_has_no_models(tmp_path: Path) -> None:
    assert load_catalog_file(_write(tmp_path / "models.toml", "")) == []


def test_bad_toml_is_refused_with_the_file_named(tmp_path: Path) -> None:
    catalog_file = _write(tmp_path / "models.toml", "[[model]\nid = 'x'\n")
    with pytest.raises(CatalogError, match="is not valid TOML") as info:
        load_catalog_file(catalog_file)
    assert str(catalog_file) in str(info.value)


def test_missing_catalog_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog_file(tmp_path / "absent.toml")


def test_unknown_keys_are_refused_and_named(tmp_path: Path) -> None:
    catalog_file = _write(
        tmp_path / "models.toml",
        '[[model]]\nid = "ok"\nlocation = "a/b"\n\n[[model]]\nid = "x"\nlocation = "a/b"\npath = "oops"\n',
    )
    with pytest.raises(CatalogError) as info:
        load_catalog_file(catalog_file)
    message = str(info.value)
    assert "model #2" in message
    assert "unknown keys ['path']" in message
    assert "allowed" in message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('location = "a/b"', "id"),
        ('id = ""\nlocation = "a/b"', "id"),
        ('id = "x"', "location"),
        ("id = 3\nlocation = 'a/b'", "id"),
    ],
)
def test_missing_or_empty_required_key_is_refused(tmp_path: Path, body: str, key: str) -> None:
    catalog_file = _write(tmp_path / "models.toml", f"[[model]]\n{body}\n")
    with pytest.raises(CatalogError, match=f"`{key}` is required"):
        load_catalog_file(catalog_file)


def test_bad_source_is_refused(tmp_path: Path) -> None:
    catalog_file = _write(tmp_path / "models.toml", '[[model]]\nid = "x"\nlocation = "a/b"\nsource = "ftp"\n')
    with pytest.raises(CatalogError, match="`source` must be one of"):
        load_catalog_file(catalog_file)


def test_a_frame_can_be_chosen_for_a_model_without_a_chat_template(tmp_path: Path) -> None:
    body = '[[model]]\nid = "base"\nlocation = "a/b"\nframe = "raw"\n[[model]]\nid = "qa"\nlocation = "a/c"\n'
    raw, qa = load_catalog_file(_write(tmp_path / "models.toml", body))
    assert (raw.frame, qa.frame) == ("raw", "")
    bad = _write(tmp_path / "bad.toml", '[[model]]\nid = "x"\nlocation = "a/b"\nframe = "chat"\n')
    with pytest.raises(CatalogError, match="`frame` must be \"qa\" .* or \"raw\", got 'chat'"):
        load_catalog_file(bad)


def test_model_must_be_an_array_of_tables(tmp_path: Path) -> None:
    catalog_file = _write(tmp_path / "models.toml", '[model]\nid = "x"\nlocation = "a/b"\n')
    with pytest.raises(CatalogError, match=r"array of tables"):
        load_catalog_file(catalog_file)


def test_catalog_build_adds_file_and_extra_models_after_the_bundled_ones(tmp_path: Path) -> None:
    catalog_file = _write(
        tmp_path / "models.toml", '[[model]]\nid = "qwen"\nlocation = "Qwen/Qwen2.5-0.5B"\n'
    )
    model_dir = tmp_path / "extra-model"
    model_dir.mkdir()
    catalog = Catalog.build(catalog_file, [str(model_dir), "smollm2-135m"])
    builtin = ["smollm2-135m", "gemma3-270m", "smollm2-135m-llamacpp", "gpt-5", "gpt-5-mini",
               "claude-sonnet-4", "gemini-2.5-pro"]
    assert catalog.ids() == [*builtin, "qwen", "extra-model"]
    assert catalog.get("qwen").source == "hub"
    assert catalog.get("extra-model").source == "dir"


def test_catalog_build_refuses_an_unknown_extra_model() -> None:
    with pytest.raises(CatalogError, match="unknown model 'nope'"):
        Catalog.build(extra=["nope"])


def test_spec_to_dict_names_every_field() -> None:
    data = SMOLLM2.to_dict()
    assert data["id"] == "smollm2-135m"
    assert data["bundled"] is True
    assert set(data) == {
        "id", "name", "source", "location", "gguf_file", "revision", "description", "bundled",
        "base_url", "model", "api_key_env", "tokenizer", "price_in", "price_out", "available",
    }


def test_a_served_model_entry(tmp_path: Path) -> None:
    catalog_file = _write(tmp_path / "models.toml", """
[[model]]
id = "local-llama"
source = "openai"
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
api_key_env = "LLAMA_API_KEY"
tokenizer = "smollm2-135m"
price_in = 0.15
price_out = 0.60
""")
    (spec,) = load_catalog_file(catalog_file)
    assert (spec.source, spec.base_url, spec.served_model, spec.api_key_env) == (
        "openai", "http://127.0.0.1:8080/v1", "smollm2", "LLAMA_API_KEY")
    assert (spec.tokenizer, spec.price_in, spec.price_out, spec.remote) == ("smollm2-135m", 0.15, 0.6, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('id = "x"\nsource = "openai"\nmodel = "m"\n', "`base_url` is required"),
        ('id = "x"\nsource = "openai"\nbase_url = "ftp://h"\nmodel = "m"\n', "must start with http"),
        ('id = "x"\nsource = "openai"\nbase_url = "http://h/v1"\nmodel = "m"\nprice_in = -1\n',
         "non-negative number"),
        ('id = "x"\nsource = "openai"\nbase_url = "http://h/v1"\nmodel = "m"\napi_key = "sk-1"\n',
         "keys never go in a file"),
    ],
    ids=["no-url", "bad-scheme", "negative-price", "inline-key"],
)
def test_bad_served_entries_are_refused(tmp_path: Path, body: str, message: str) -> None:
    catalog_file = _write(tmp_path / "models.toml", "[[model]]\n" + body)
    with pytest.raises(CatalogError, match=message):
        load_catalog_file(catalog_file)


def test_quick_served_and_llamacpp_references(tmp_path: Path) -> None:
    spec = spec_from_reference("openai:smollm2@http://127.0.0.1:8080/v1")
    assert (spec.id, spec.source, spec.served_model, spec.base_url) == (
        "smollm2@127.0.0.1:8080", "openai", "smollm2", "http://127.0.0.1:8080/v1")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    served = spec_from_reference(f"llama.cpp:{gguf}")
    assert (served.source, served.location, served.id) == ("llama.cpp", str(gguf.resolve()), "m@llama.cpp")
    with pytest.raises(CatalogError, match="openai:MODEL@BASE_URL"):
        spec_from_reference("openai:nourl")


@pytest.mark.parametrize(
    ("url", "key_env"),
    [
        ("https://api.openai.com/v1", "OPENAI_API_KEY"),
        ("https://API.OpenAI.com./v1/", "OPENAI_API_KEY"),  # case and the root dot do not change the host
        ("https://api.openai.com:443/v1", "OPENAI_API_KEY"),
        ("https://api.anthropic.com/v1/", "ANTHROPIC_API_KEY"),
        ("http://api.openai.com.attacker.invalid/v1", ""),  # issue 20: the look-alike got the key
        ("https://api.openai.com.attacker.invalid/v1", ""),
        ("https://evil-api.openai.com/v1", ""),
        ("https://api.openai.com@attacker.invalid/v1", ""),  # user-info: the host is attacker.invalid
        ("https://attacker.invalid/api.openai.com/v1", ""),
        ("http://api.openai.com/v1", ""),  # plain http would send it in clear
        ("https://api.openai.com:8443/v1", ""),
    ],
)
def test_a_typed_reference_inherits_a_key_only_on_its_presets_exact_origin(url: str, key_env: str) -> None:
    assert preset_key_env(url) == key_env
    if "@" in url:  # openai:MODEL@URL splits at the last @: this one is no served-model reference at all
        with pytest.raises(CatalogError, match="openai:MODEL@BASE_URL"):
            spec_from_reference(f"openai:gpt-x@{url}")
    else:
        assert spec_from_reference(f"openai:gpt-x@{url}").api_key_env == key_env
