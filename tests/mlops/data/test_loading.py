"""Reading files into a table and matching its columns to the spec."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlops.core.errors import DataLoadError, DataValidationError
from mlops.core.spec import PipelineSpec
from mlops.data.loading import conform_columns, conform_table, read_arrow, read_table
from mlops.data.storage import list_data_files


def _small() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def _read(url: Path, fmt: str = "auto") -> pd.DataFrame:
    return read_table(list_data_files(str(url), fmt), fmt)


class TestReadTable:
    def test_parquet_partitions_in_order(self, tmp_path: Path) -> None:
        df = _small()
        df.iloc[:2].to_parquet(tmp_path / "part-0.parquet")
        df.iloc[2:].to_parquet(tmp_path / "part-1.parquet")
        out = _read(tmp_path)
        assert out["a"].tolist() == [1, 2, 3]
        assert out["b"].tolist() == ["x", "y", "z"]

    def test_parquet_partitions_with_different_int_and_float_types(self, tmp_path: Path) -> None:
        pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "p0.parquet")
        pd.DataFrame({"a": [None, 4.5]}).to_parquet(tmp_path / "p1.parquet")
        out = _read(tmp_path)["a"]
        assert out.dtype == "float64"
        assert out.isna().tolist() == [False, False, True, False]
        assert out.dropna().tolist() == [1.0, 2.0, 4.5]

    def test_csv_partitions(self, tmp_path: Path) -> None:
        df = _small()
        df.iloc[:1].to_csv(tmp_path / "p0.csv", index=False)
        df.iloc[1:].to_csv(tmp_path / "p1.csv", index=False)
        pd.testing.assert_frame_equal(_read(tmp_path), df, check_dtype=False)

    def test_csv_under_another_extension_with_explicit_format(self, tmp_path: Path) -> None:
        _small().to_csv(tmp_path / "export.txt", index=False)
        assert len(_read(tmp_path / "export.txt", fmt="csv")) == 3

    def test_mixed_formats_are_refused(self, tmp_path: Path) -> None:
        _small().to_parquet(tmp_path / "a.parquet")
        _small().to_csv(tmp_path / "b.csv", index=False)
        with pytest.raises(DataLoadError, match="mixed data formats.*b.csv"):
            _read(tmp_path)

    def test_empty_file(self, tmp_path: Path) -> None:
        (tmp_path / "empty.parquet").write_bytes(b"")
        with pytest.raises(DataLoadError, match=r"empty.parquet is empty \(0 bytes\)"):
            _read(tmp_path / "empty.parquet")

    def test_parquet_without_rows(self, tmp_path: Path) -> None:
        _small().iloc[:0].to_parquet(tmp_path / "none.parquet")
        with pytest.raises(DataLoadError, match="none.parquet has 0 rows"):
            _read(tmp_path)

    def test_csv_with_only_a_header(self, tmp_path: Path) -> None:
        (tmp_path / "header.csv").write_text("a,b\n")
        with pytest.raises(DataLoadError, match="header.csv has 0 rows"):
            _read(tmp_path)

    def test_csv_of_blank_lines(self, tmp_path: Path) -> None:
        (tmp_path / "blank.csv").write_text("\n\n")
        with pytest.raises(DataLoadError, match="blank.csv is empty"):
            _read(tmp_path)

    def test_corrupt_parquet(self, tmp_path: Path) -> None:
        (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
        with pytest.raises(DataLoadError, match="cannot read parquet file .*bad.parquet"):
            _read(tmp_path)

    def test_unreadable_csv(self, tmp_path: Path) -> None:
        (tmp_path / "bad.csv").write_text('a,b\n1,2\n3,4,5,6\n"unclosed\n')
        with pytest.raises(DataLoadError, match="cannot read csv file .*bad.csv"):
            _read(tmp_path)

    def test_no_files(self) -> None:
        with pytest.raises(DataLoadError, match="no data files"):
            read_table([])


class TestConformColumns:
    def test_matches_case_and_separators_and_orders_like_the_spec(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        messy = generated_churn.rename(
            columns={
                "tenure_months": "Tenure Months",
                "support_calls": "SUPPORT_CALLS",
                "customer_id": "customerid",
                "age": "Age",
            }
        )
        messy = messy[list(reversed(messy.columns))]
        out = conform_columns(messy, churn_yaml)
        assert list(out.columns) == [c.name for c in churn_yaml.columns]
        pd.testing.assert_frame_equal(out, generated_churn)

    def test_missing_columns_all_named(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        df = generated_churn.drop(columns=["age", "region"])
        with pytest.raises(DataValidationError, match=r"missing columns: \['age', 'region'\]"):
            conform_columns(df, churn_yaml)

    def test_extra_columns_fail_by_default(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        df = generated_churn.assign(score=1.0, notes="x")
        with pytest.raises(DataValidationError, match=r"extra columns.*\['score', 'notes'\]"):
            conform_columns(df, churn_yaml)

    def test_extra_columns_dropped_when_asked(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        spec = churn_yaml.model_copy(
            update={"data": churn_yaml.data.model_copy(update={"extra_columns": "drop"})}
        )
        out = conform_columns(generated_churn.assign(score=1.0), spec)
        assert "score" not in out.columns
        assert len(out.columns) == len(spec.columns)

    def test_two_columns_for_one_spec_column(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        df = generated_churn.assign(**{"TENURE MONTHS": 3})
        with pytest.raises(DataValidationError) as info:
            conform_columns(df, churn_yaml)
        message = str(info.value)
        clash = "'tenure_months' and 'TENURE MONTHS' both match spec column 'tenure_months'"
        assert clash in message
        assert "extra columns" not in message

    def test_all_problems_in_one_message(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        df = generated_churn.drop(columns=["age"]).assign(score=1.0)
        with pytest.raises(DataValidationError, match=r"missing columns.*age.*extra.*score"):
            conform_columns(df, churn_yaml)


class TestArrow:
    """`read_arrow` and `conform_table`: the load stage's path, with no DataFrame in between."""

    def test_read_arrow_reads_what_read_table_reads(self, tmp_path: Path) -> None:
        pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "p0.parquet")
        pd.DataFrame({"a": [None, 4.5]}).to_parquet(tmp_path / "p1.parquet")
        files = list_data_files(str(tmp_path))
        pd.testing.assert_frame_equal(read_arrow(files).to_pandas(), read_table(files))
        _small().to_csv(tmp_path / "c.csv", index=False)
        csv = list_data_files(str(tmp_path / "c.csv"))
        pd.testing.assert_frame_equal(read_arrow(csv).to_pandas(), read_table(csv))

    def test_read_arrow_refuses_what_read_table_refuses(self, tmp_path: Path) -> None:
        (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
        with pytest.raises(DataLoadError, match="cannot read parquet file .*bad.parquet"):
            read_arrow(list_data_files(str(tmp_path)))
        with pytest.raises(DataLoadError, match="no data files"):
            read_arrow([])

    def test_conform_table_names_and_orders_like_conform_columns(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        messy = generated_churn.rename(columns={"tenure_months": "Tenure Months", "age": "AGE"})
        messy = messy[list(reversed(messy.columns))]
        table = conform_table(pa.Table.from_pandas(messy, preserve_index=False), churn_yaml)
        assert table.schema.metadata is None  # the file's pandas metadata named other columns
        pd.testing.assert_frame_equal(table.to_pandas(), conform_columns(messy, churn_yaml))

    def test_conform_table_fails_like_conform_columns(
        self, churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
    ) -> None:
        df = generated_churn.drop(columns=["age"]).assign(score=1.0)
        with pytest.raises(DataValidationError) as expected:
            conform_columns(df, churn_yaml)
        with pytest.raises(DataValidationError) as got:
            conform_table(pa.Table.from_pandas(df), churn_yaml)
        assert str(got.value) == str(expected.value)

    def test_columns_are_read_into_the_spec_types_when_that_loses_nothing(self) -> None:
        spec = PipelineSpec.model_validate({
            "name": "types", "data": {"url": "unused"}, "target": "y",
            "task": "classification", "model": {"estimator": "x.Y"},
            "evaluation": {"primary_metric": "roc_auc"},
            "columns": [
                {"name": "i", "dtype": "int"}, {"name": "f", "dtype": "float"},
                {"name": "c", "dtype": "category"}, {"name": "t", "dtype": "datetime"},
                {"name": "text_int", "dtype": "int"}, {"name": "big", "dtype": "int"},
                {"name": "y", "dtype": "bool"},
            ],
        })
        table = conform_table(pa.table({
            "i": pa.array([1, None], pa.int32()),
            "f": pa.array([1.5, 2], pa.float32()),
            "c": pa.array(["a", None]).dictionary_encode(),
            "t": pa.array([0, 10**6], pa.timestamp("us")),
            "text_int": pa.array(["1", "two"]),
            "big": pa.array([1, 2**63], pa.uint64()),
            "y": pa.array([True, False]),
        }), spec)
        assert table.schema.types == [
            pa.int64(), pa.float64(), pa.large_string(), pa.timestamp("ns"),
            pa.string(),  # not an integer type: validation reports 'two'
            pa.uint64(),  # 2**63 does not fit int64: validation reports it
            pa.bool_(),
        ]
        assert table.column("i").to_pylist() == [1, None]
        assert table.column("c").to_pylist() == ["a", None]
        assert table.column("t").cast(pa.int64()).to_pylist() == [0, 10**9]
