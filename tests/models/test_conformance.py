"""The conformance suite, run over every registered model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from zenrec import testing
from zenrec.errors import ArtifactError, ConfigError, UnknownModelError, VersionError
from zenrec.models import Query, TrainOptions, available_models, create_model, load_model
from zenrec.models.registry import MODELS, get_model_class

ALL = available_models()


def test_registry_lists_the_foundation_models():
    assert {"pop", "itemknn", "ease", "als", "lmf"} <= set(MODELS)


@pytest.mark.parametrize("name", ALL)
def test_conformance(name):
    testing.check_model(name)


@pytest.mark.parametrize("name", ALL)
def test_every_model_declares_a_test_config_and_whether_it_uses_torch(name):
    """The conformance suite fits each model at its own tiny config, which must name real parameters;
    ``uses_torch`` is what a caller reads to learn that a model needs torch (every TorchRecommender)."""
    from zenrec.models.neural import TorchRecommender

    cls = get_model_class(name)
    assert "test_config" in vars(cls), f"{cls.__name__} declares no test_config"
    assert set(cls.test_config) <= set(cls.Config.model_fields)
    cls(**cls.test_config)
    assert cls.uses_torch == issubclass(cls, TorchRecommender)


def test_the_registry_and_every_model_class_import_without_torch():
    """torch is imported where a network is built or loaded, not by ``import zenrec`` or a model's module."""
    code = ("import sys, zenrec, zenrec.testing\n"
            "from zenrec.models.registry import MODELS, get_model_class\n"
            "classes = [get_model_class(n) for n in MODELS]\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert sum(c.uses_torch for c in classes) >= 6")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["lmf", "multitask"])
def test_a_saved_penalty_under_the_old_name_weight_decay_is_refused(name, tmp_path):
    """LogisticMF's and MultiTask's loss penalty is ``embedding_l2``; ``weight_decay`` is only ever the
    optimiser's.  A file that saved the penalty as ``weight_decay`` fails to load, naming that key."""
    path = testing.small_model(name, epochs=1).fit(testing.checkerboard(12)).save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["params"]["weight_decay"] = manifest["params"].pop("embedding_l2")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"(?s)manifest.json: incompatible manifest .*"
                                            r"has no parameter 'weight_decay'.*retrain"):
        load_model(path)


@pytest.mark.parametrize("name", ALL)
def test_recommend_never_returns_excluded_items(name):
    data = testing.checkerboard(40)
    model = testing.small_model(name).fit(data, options=TrainOptions(seed=0, threads=1))
    seen = data.binary.toarray().astype(bool)
    lists = model.recommend_batch([Query(user=u, k=25, exclude=np.flatnonzero(seen[u])) for u in range(40)])
    for u, r in enumerate(lists):
        # each user saw 19 items, so 21 remain: the list stops there
        assert len(r) == 21 and list(r.ranks) == list(range(1, 22))
        assert not seen[u, r.items].any()
        assert (np.diff(r.scores) <= 0).all(), "lists must be sorted best first"
        assert r.fallback is None


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(UnknownModelError, match="unknown model 'easy'.*available models: pop"):
        create_model("easy")


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "5", None])
def test_bad_k_is_refused(k):
    with pytest.raises(ConfigError, match="'k' parameter must be a positive integer"):
        Query(user=0, k=k)


def test_bad_parameter_names_field_and_value():
    with pytest.raises(ConfigError, match=r"the 'reg' parameter of EASE .*greater than 0.*got -1"):
        create_model("ease", reg=-1)
    with pytest.raises(ConfigError, match="EASE has no parameter 'lambda_'"):
        create_model("ease", lambda_=3)


def test_ease_refuses_catalogues_past_max_items():
    data = testing.checkerboard(30)
    with pytest.raises(ConfigError, match=r"EASE on 30 items needs about .* GiB.*'max_items'"):
        create_model("ease", max_items=20).fit(data)


@pytest.fixture()
def saved(tmp_path):
    model = create_model("ease").fit(testing.checkerboard(20))
    return model.save(tmp_path / "m")


def test_truncated_arrays_are_refused(saved):
    blob = (saved / "arrays.npz").read_bytes()
    (saved / "arrays.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ArtifactError, match="arrays.npz: corrupted or truncated"):
        load_model(saved)


def test_corrupted_manifest_is_refused(saved):
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupted manifest"):
        load_model(saved)


def test_missing_arrays_are_refused(saved):
    (saved / "arrays.npz").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_model(saved)


def test_future_format_is_refused_with_upgrade_hint(saved):
    m = json.loads((saved / "manifest.json").read_text())
    m["format_version"] = 99
    m["zenrec_version"] = "9.0.0"
    (saved / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(VersionError, match="written by zenrec 9.0.0 .* format 99.*Upgrade zenrec"):
        load_model(saved)


def test_pickled_arrays_are_never_loaded(saved, tmp_path):
    """An npz holding an object array (which needs pickle) is refused, not executed."""
    arrays = dict(np.load(saved / "arrays.npz", allow_pickle=False))
    arrays["model.weights"] = np.array([{"evil": 1}], dtype=object)
    with open(saved / "arrays.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ArtifactError):
        load_model(saved)


@pytest.mark.parametrize("name", ["sasrec", "twotower"])
def test_network_weights_of_another_layout_are_refused_clearly(tmp_path, name):
    """A torch model whose saved weights do not fit this version's network (a renamed layer) gives an
    ArtifactError naming the file, not a torch traceback."""
    model = create_model(name, epochs=1, factors=8).fit(testing.checkerboard(12))
    path = model.save(tmp_path / "s")
    arrays = dict(np.load(path / "arrays.npz", allow_pickle=False))
    key = next(k for k in arrays if k.startswith("model.net."))
    arrays[key.replace("model.net.", "model.net.layers.")] = arrays.pop(key)
    with open(path / "arrays.npz", "wb") as fh:
        np.savez(fh, **arrays)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"] = sorted(arrays)  # a self-consistent file, as an older version would have written it
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=rf"arrays.npz: does not match .*does not fit {name}'s network"):
        load_model(path)


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    model = create_model("pop").fit(testing.checkerboard(10))
    target = tmp_path / "m"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("zenrec.models.base.write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_batch_equals_single_check_catches_a_wrong_row():
    """The check's tolerance follows the scores' scale but still fails a batch that returns another user's row."""
    model = create_model("ease").fit(testing.checkerboard(20))
    testing.check_batch_equals_single(model, np.arange(6))
    honest = model.score

    def swapped(users):  # noqa: ANN001, ANN202
        out = honest(users)
        return out[::-1] if len(out) > 1 else out

    model.score = swapped
    with pytest.raises(AssertionError):
        testing.check_batch_equals_single(model, np.arange(6))


@pytest.mark.parametrize(("name", "key", "kept", "other"), [("twotower", "mask_seen", True, False),
                                                            ("sasrec", "lr_decay", None, 0.5)])
def test_a_retired_option_loads_at_its_kept_value_and_is_refused_at_another(tmp_path, name, key, kept, other):
    path = testing.small_model(name, epochs=1).fit(testing.checkerboard(12)).save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["params"][key] = kept
    (path / "manifest.json").write_text(json.dumps(manifest))
    load_model(path)  # a file from before the option was retired, at the value the model now always uses
    manifest["params"][key] = other
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=rf"has no parameter '{key}'.*retrain"):
        load_model(path)


def test_the_two_towers_sampled_loss_is_finite_with_the_users_items_masked():
    """Masked candidates sit at -inf; the soft-label loss must not compute 0 · -inf (it once logged NaN)."""
    model = testing.small_model("twotower", loss="sampled", negatives=8, epochs=3).fit(testing.checkerboard(20))
    losses = [row["loss"] for row in model.train_history_]
    assert losses and all(np.isfinite(losses)), losses


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (dict(user="u3"), "speaks user indices; got user 'u3'"),
        (dict(history=["a", "b"]), "'history' at a model must hold item indices; got values such as 'a'"),
        (dict(user=3, exclude=["x"]), "'exclude' at a model must hold item indices"),
        (dict(user=3, filter=np.ones(5, dtype=bool)), "one flag per item \\(10\\); got shape \\(5,\\)"),
        (dict(user=3, filter=[99]), "filter item index 99 is outside \\[0, 10\\)"),
        (dict(history=[1, 12]), "history item index 12 is outside \\[0, 10\\)"),
    ],
)
def test_a_model_refuses_raw_ids_and_out_of_range_indices_by_name(query, message):
    """A model speaks indices: a raw id or an index past the catalogue is a clear error, never a silent fallback."""
    model = create_model("ease").fit(testing.checkerboard(10))
    with pytest.raises((ConfigError, KeyError), match=message):
        model.recommend(Query(**query))


def test_a_query_at_the_model_excludes_its_history_and_keeps_to_its_filter():
    model = create_model("ease").fit(testing.checkerboard(10))
    out = model.recommend(Query(history=[1, 3], k=10))
    assert out.fallback is None and not {1, 3} & set(out.items.tolist())
    allowed = model.recommend(Query(user=2, k=10, filter=[0, 4, 6]))
    assert set(allowed.items.tolist()) <= {0, 4, 6}
    cold = model.recommend(Query(user=None, k=3))
    assert cold.fallback == "popular" and len(cold) == 3
