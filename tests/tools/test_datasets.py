"""The sample-data generator: deterministic, valid for its spec, learnable, drift where asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from mlops.core.spec import PipelineSpec
from mlops.data.loading import conform_columns, read_table
from mlops.data.storage import list_data_files
from mlops.data.validation import validate_frame
from tools.datasets import main, make_churn, write_churn, write_diabetes


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(url: Path, spec: PipelineSpec) -> pd.DataFrame:
    return validate_frame(conform_columns(read_table(list_data_files(str(url))), spec), spec)


class TestMakeChurn:
    def test_deterministic(self) -> None:
        pd.testing.assert_frame_equal(make_churn(300, seed=1), make_churn(300, seed=1))
        assert not make_churn(300, seed=1).equals(make_churn(300, seed=2))

    def test_a_prefix_is_the_same_rows(self) -> None:
        # Rows depend on their position only, so a bigger table starts with the smaller one.
        pd.testing.assert_frame_equal(make_churn(20_000).head(300), make_churn(300))

    def test_matches_the_spec(self, churn_yaml: PipelineSpec) -> None:
        df = make_churn(2000, seed=4)
        assert list(df.columns) == [c.name for c in churn_yaml.columns]
        out = validate_frame(df, churn_yaml)
        assert out["customer_id"].is_unique
        span = out["signup_date"].max() - out["signup_date"].min()
        assert pd.Timedelta(days=600) < span <= pd.Timedelta(days=730)

    def test_has_some_missing_values_within_limits(self, churn_yaml: PipelineSpec) -> None:
        df = make_churn(5000)
        for column in churn_yaml.columns:
            share = df[column.name].isna().mean()
            assert share <= column.rules.max_null_fraction
            assert (share > 0) == (column.rules.max_null_fraction > 0), column.name

    def test_target_is_learnable(self, churn_yaml: PipelineSpec) -> None:
        df = make_churn(6000, seed=7).sort_values("signup_date")
        assert 0.2 <= df["churned"].mean() <= 0.3
        features = df.drop(columns=["customer_id", "signup_date", "churned"])
        for column in ("contract", "payment_method", "internet_service", "region"):
            features[column] = features[column].astype("category")
        cut = int(len(df) * 0.75)
        model = HistGradientBoostingClassifier(
            max_iter=60, categorical_features="from_dtype", random_state=0
        ).fit(features.iloc[:cut], df["churned"].iloc[:cut])
        scores = model.predict_proba(features.iloc[cut:])[:, 1]
        auc = roc_auc_score(df["churned"].iloc[cut:], scores)
        assert 0.78 <= auc <= 0.92

    def test_extra_numeric_columns(self) -> None:
        df = make_churn(100, extra_numeric=12)
        extras = [f"extra_{i}" for i in range(12)]
        assert [c for c in df.columns if c.startswith("extra_")] == extras
        assert (df[extras].dtypes == "float64").all()
        # 8 numeric + 12 extra = 20 numeric; 4 categories + 1 bool = 5 categorical.
        pd.testing.assert_frame_equal(df.drop(columns=extras), make_churn(100))

    def test_unknown_drift_column(self) -> None:
        with pytest.raises(ValueError, match=r"cannot drift \['churned'\]"):
            make_churn(10, drift={"churned": 1.0})


class TestDrift:
    def test_only_the_named_columns_change(self) -> None:
        base = make_churn(3000, seed=2)
        drifted = make_churn(3000, seed=2, drift={"age": 1.0, "contract": 0.5})
        others = [c for c in base.columns if c not in ("age", "contract")]
        pd.testing.assert_frame_equal(drifted[others], base[others])
        assert drifted["age"].mean() > base["age"].mean() + 8
        assert drifted["age"].std() > base["age"].std()
        assert drifted["age"].isna().equals(base["age"].isna())
        share = (drifted["contract"] == "two-year").mean()
        assert share > (base["contract"] == "two-year").mean() + 0.15

    def test_mild_drift_stays_valid(self, churn_yaml: PipelineSpec) -> None:
        drift = {"tenure_months": 2.0, "monthly_charges": -1.0, "region": 0.5}
        validate_frame(make_churn(1000, drift=drift), churn_yaml)

    def test_strong_categorical_drift_adds_an_unseen_level(self) -> None:
        weak = make_churn(2000, drift={"region": 0.9})
        strong = make_churn(2000, drift={"region": 2.0})
        assert "region-new" not in set(weak["region"])
        assert (strong["region"] == "region-new").mean() > 0.05

    def test_extra_columns_drift(self) -> None:
        base = make_churn(1000, extra_numeric=2)
        drifted = make_churn(1000, extra_numeric=2, drift={"extra_1": 1.5})
        assert drifted["extra_1"].mean() > base["extra_1"].mean() + 1
        pd.testing.assert_series_equal(drifted["extra_0"], base["extra_0"])


class TestWriteChurn:
    def test_partitions_and_chunks_do_not_change_the_data(self, tmp_path: Path) -> None:
        write_churn(str(tmp_path / "one"), 1200, seed=3)
        write_churn(str(tmp_path / "three"), 1200, partitions=3, seed=3, chunk_rows=250)
        names = sorted(p.name for p in (tmp_path / "three").iterdir())
        assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
        one = read_table(list_data_files(str(tmp_path / "one")))
        three = read_table(list_data_files(str(tmp_path / "three")))
        pd.testing.assert_frame_equal(one, three)
        pd.testing.assert_frame_equal(one, make_churn(1200, seed=3))

    def test_same_arguments_same_bytes(self, tmp_path: Path) -> None:
        write_churn(str(tmp_path / "a"), 700, partitions=2, chunk_rows=300)
        write_churn(str(tmp_path / "b"), 700, partitions=2, chunk_rows=300)
        for name in ("part-00000.parquet", "part-00001.parquet"):
            assert _digest(tmp_path / "a" / name) == _digest(tmp_path / "b" / name)

    def test_csv_reads_back_valid(self, tmp_path: Path, churn_yaml: PipelineSpec) -> None:
        written = write_churn(str(tmp_path / "csv"), 900, partitions=2, fmt="csv", chunk_rows=200)
        assert [Path(p).name for p in written] == ["part-00000.csv", "part-00001.csv"]
        out = _load(tmp_path / "csv", churn_yaml)
        expected = validate_frame(make_churn(900), churn_yaml)
        pd.testing.assert_frame_equal(out, expected, check_exact=False)

    def test_rewrite_removes_stale_partitions(self, tmp_path: Path) -> None:
        out = tmp_path / "churn"
        write_churn(str(out), 600, partitions=3)
        (out / "keep.txt").write_text("not ours")
        write_churn(str(out), 600, partitions=1)
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "part-00000.parquet"]

    def test_refuses_bad_arguments(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="n_rows"):
            write_churn(str(tmp_path), 0)
        with pytest.raises(ValueError, match="fmt"):
            write_churn(str(tmp_path), 10, fmt="json")


def test_write_diabetes(tmp_path: Path, diabetes_yaml: PipelineSpec) -> None:
    write_diabetes(str(tmp_path / "sub" / "diabetes.parquet"))
    out = _load(tmp_path / "sub" / "diabetes.parquet", diabetes_yaml)
    assert out.shape == (442, 11)


class TestCli:
    def test_churn(self, tmp_path: Path, churn_yaml: PipelineSpec) -> None:
        out = tmp_path / "churn"
        argv = [
            "churn",
            "--rows",
            "600",
            "--out",
            str(out),
            "--partitions",
            "2",
            "--drift",
            "age=0.5",
            "region=0.3",
            "--seed",
            "9",
        ]
        assert main(argv) == 0
        df = _load(out, churn_yaml)
        expected = make_churn(600, seed=9, drift={"age": 0.5, "region": 0.3})
        pd.testing.assert_series_equal(df["age"], expected["age"])

    def test_diabetes(self, tmp_path: Path) -> None:
        assert main(["diabetes", "--out", str(tmp_path / "d.parquet")]) == 0
        assert (tmp_path / "d.parquet").stat().st_size > 0

    @pytest.mark.parametrize("drift", ["age", "age=x", "nosuch=1"])
    def test_bad_drift(self, tmp_path: Path, drift: str) -> None:
        with pytest.raises(SystemExit) as info:
            main(["churn", "--rows", "10", "--out", str(tmp_path), "--drift", drift])
        assert info.value.code == 2


def test_numeric_columns_keep_their_types() -> None:
    df = make_churn(50, drift={"tenure_months": 1.0, "age": 1.0})
    assert df["tenure_months"].dtype == np.int64
    assert df["age"].dtype == np.float64


def test_round_trip_through_a_non_local_filesystem(churn_yaml: PipelineSpec) -> None:
    """fsspec's memory store stands in for abfs://: URLs, listing and pyarrow all use fsspec."""
    import fsspec

    url = "memory://test-datasets/churn"
    try:
        written = write_churn(url, 600, partitions=2, seed=1)
        assert all(u.startswith("memory://") for u in written)
        assert [u.rsplit("/", 1)[1] for u in written] == [
            "part-00000.parquet",
            "part-00001.parquet",
        ]
        files = list_data_files(url)
        assert [f.url for f in files] == written
        out = validate_frame(conform_columns(read_table(files), churn_yaml), churn_yaml)
        assert len(out) == 600
    finally:
        fsspec.filesystem("memory").rm("/test-datasets", recursive=True)
