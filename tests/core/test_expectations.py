import pandas as pd

from instructlf_assets.core.expectations import validate_frame


def test_failures_name_the_expectation_column_and_rows():
    frame = pd.DataFrame({"doc_id": ["a", "b", "b"], "text": ["x", "", "y"]})
    outcome = validate_frame(
        frame,
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        ],
        "docs",
    )
    assert not outcome.success and outcome.evaluated == 2
    failures = {f["expectation"]: f for f in outcome.failures}
    assert failures["expect_column_values_to_be_unique"]["rows"] == [1, 2]
    assert failures["expect_column_value_lengths_to_be_between"]["rows"] == [1]


def test_clean_frame_passes():
    outcome = validate_frame(
        pd.DataFrame({"x": [1, 2]}), lambda gxe: [gxe.ExpectTableRowCountToBeBetween(min_value=1)], "t"
    )
    assert outcome.success and outcome.summary() == "all 1 expectations met"
