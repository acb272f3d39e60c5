"""Mart contracts compiled to Great Expectations suites and run on pandas DataFrames (real GX)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mart_rows import ROWS, sessions_frame

from orchestration.checks.great_expectations import MartValidation, expectation_suite, validate_mart
from orchestration.contracts import CONTRACTS_DIR, ContractError, MartColumn, MartContract, QualityRule, mart_contract


@pytest.fixture(scope="module")
def sessions() -> MartContract:
    return mart_contract(CONTRACTS_DIR / "marts" / "fct_sessions.yaml")


def test_suite_compiles_every_promise_of_the_contract(sessions):
    suite = expectation_suite(sessions)
    rules = {e.meta["rule"]: type(e).__name__ for e in suite.expectations}

    assert rules["fct_sessions: has exactly the contract's 15 columns"] == "ExpectTableColumnsToMatchSet"
    assert rules["fct_sessions.session_key: not null"] == "ExpectColumnValuesToNotBeNull"
    assert rules["fct_sessions.ended_at: not null"] == "ExpectColumnValuesToNotBeNull"
    assert "fct_sessions.user_id: not null" not in rules  # optional column
    assert rules["fct_sessions.session_key: unique"] == "ExpectColumnValuesToBeUnique"
    assert rules["fct_sessions.device_class: one of Desktop, Mobile, Tablet, Unknown"] == "ExpectColumnValuesToBeInSet"
    assert rules["fct_sessions.csat_score: between 1 and 5"] == "ExpectColumnValuesToBeBetween"
    assert rules["fct_sessions.events: at least 1"] == "ExpectColumnValuesToBeBetween"
    assert (rules["fct_sessions: session_ends_after_start (A session cannot end before it starts.)"]
            == "ExpectColumnPairValuesAToBeGreaterThanB")
    # `sql` rules are dbt's
    assert not any("page_views_within_events" in r for r in rules)
    columns = next(e for e in suite.expectations if type(e).__name__ == "ExpectTableColumnsToMatchSet")
    assert set(columns.column_set) == {c.name for c in sessions.columns}
    assert columns.exact_match is True


def test_rows_that_keep_the_contract_pass(sessions):
    result = validate_mart(sessions, sessions_frame())

    assert isinstance(result, MartValidation)
    assert result.passed, result.message
    assert result.failures == []
    assert result.rows_checked == ROWS
    assert result.message == f"all {len(expectation_suite(sessions).expectations)} rules hold on {ROWS} rows"


def _null_source(df):
    df.loc[17, "source"] = None


def _duplicate_key(df):
    df.loc[17, "session_key"] = df.loc[16, "session_key"]


def _unknown_device(df):
    df.loc[17, "device_class"] = "Smartwatch"


def _csat_out_of_range(df):
    df.loc[17, "csat_score"] = 9


def _no_events(df):
    df.loc[17, "events"] = 0


def _ends_before_start(df):
    df.loc[17, "ended_at"] = df.loc[17, "started_at"] - pd.Timedelta(minutes=1)


@pytest.mark.parametrize(("break_row", "rule", "count", "key"), [
    (_null_source, "fct_sessions.source: not null", 1, "s0017"),
    (_duplicate_key, "fct_sessions.session_key: unique", 2, "s0016"),
    (_unknown_device, "fct_sessions.device_class: one of Desktop, Mobile, Tablet, Unknown", 1, "s0017"),
    (_csat_out_of_range, "fct_sessions.csat_score: between 1 and 5", 1, "s0017"),
    (_no_events, "fct_sessions.events: at least 1", 1, "s0017"),
    (_ends_before_start, "fct_sessions: session_ends_after_start (A session cannot end before it starts.)", 1,
     "s0017"),
], ids=["null", "duplicate-key", "enum", "range", "minimum", "ends-before-start"])
def test_one_bad_row_fails_naming_the_rule_and_the_row(sessions, break_row, rule, count, key):
    df = sessions_frame()
    break_row(df)

    result = validate_mart(sessions, df)

    assert not result.passed
    assert result.failures == [f"{rule} — {count} of {ROWS} rows break it, e.g. session_key={key}"]
    assert result.message == result.failures[0]


def test_a_null_key_is_named_null(sessions):
    df = sessions_frame()
    df.loc[3, "session_key"] = None

    result = validate_mart(sessions, df)

    assert result.failures == [
        f"fct_sessions.session_key: not null — 1 of {ROWS} rows break it, e.g. session_key=null"]


def test_examples_stop_at_five(sessions):
    df = sessions_frame()
    df.loc[10:16, "device_class"] = "desktop"  # 7 rows

    (failure,) = validate_mart(sessions, df).failures

    assert failure.startswith(
        f"fct_sessions.device_class: one of Desktop, Mobile, Tablet, Unknown — 7 of {ROWS} rows")
    assert failure.endswith("e.g. session_key=s0010, session_key=s0011, session_key=s0012, session_key=s0013, "
                            "session_key=s0014")


def test_several_broken_rules_are_all_reported(sessions):
    df = sessions_frame()
    _unknown_device(df)
    _ends_before_start(df)
    df.loc[40, "page_views"] = -1

    result = validate_mart(sessions, df)

    assert not result.passed
    assert len(result.failures) == 3
    assert "fct_sessions.page_views: at least 0 — 1 of 120 rows break it, e.g. session_key=s0040" in result.failures
    assert result.message == "\n".join(result.failures)


def test_a_missing_column_fails_naming_it(sessions):
    df = sessions_frame().drop(columns=["device_class"])

    result = validate_mart(sessions, df)

    assert not result.passed
    assert result.failures[0] == "fct_sessions: has exactly the contract's 15 columns — missing columns: device_class"
    # the column's own rules cannot run, and say so
    assert any(f.startswith("fct_sessions.device_class: not null — could not be checked")
               and "device_class" in f.split("—", 1)[1] for f in result.failures)


def test_an_extra_column_fails_naming_it(sessions):
    result = validate_mart(sessions, sessions_frame().assign(debug_flag=True))

    assert result.failures == ["fct_sessions: has exactly the contract's 15 columns — unexpected columns: debug_flag"]


def test_a_missing_key_column_still_reports_rows(sessions):
    df = sessions_frame().drop(columns=["session_key"])
    _unknown_device(df)

    result = validate_mart(sessions, df)

    # without the key, a failing row is named by its position in the DataFrame
    assert (f"fct_sessions.device_class: one of Desktop, Mobile, Tablet, Unknown — 1 of {ROWS} rows break it, "
            "e.g. row 17") in result.failures


def test_an_empty_mart_passes(sessions):
    empty = sessions_frame().iloc[:0]

    result = validate_mart(sessions, empty)

    assert result.passed, result.message
    assert result.rows_checked == 0
    assert result.message.endswith("hold on 0 rows")


def test_an_empty_mart_without_its_columns_fails(sessions):
    result = validate_mart(sessions, pd.DataFrame({"session_key": pd.Series([], dtype=str)}))

    assert not result.passed
    assert result.failures[0].startswith("fct_sessions: has exactly the contract's 15 columns — missing columns: ")


def _orders(rules=()) -> MartContract:
    return MartContract(
        name="fct_orders", relation="marts.fct_orders", description="", path=Path("fct_orders.yaml"),
        columns=(
            MartColumn("shop", "VARCHAR", required=True, primary_key_position=1),
            MartColumn("order_no", "BIGINT", required=True, primary_key_position=2),
            MartColumn("sku", "VARCHAR", pattern=r"^[A-Z]{3}-\d{4}$"),
            MartColumn("amount", "DOUBLE", minimum=0.5, maximum=1000),
        ),
        rules=tuple(rules),
    )


def _orders_frame() -> pd.DataFrame:
    return pd.DataFrame({"shop": ["a", "a", "b", "b"], "order_no": [1, 2, 1, 2],
                         "sku": ["ABC-0001", None, "XYZ-1234", "QQQ-9999"], "amount": [0.5, 10.0, 999.0, 1000.0]})


def test_a_compound_key_names_rows_by_all_its_columns():
    contract = _orders()
    df = _orders_frame()
    df.loc[3, "order_no"] = 1

    result = validate_mart(contract, df)

    assert result.failures == [
        "fct_orders: (shop, order_no) unique — 2 of 4 rows break it, e.g. (shop=b, order_no=1)"]


def test_pattern_and_range_with_a_compound_key():
    contract = _orders()
    assert validate_mart(contract, _orders_frame()).passed
    df = _orders_frame()
    df.loc[1, "sku"] = "abc-1"
    df.loc[2, "amount"] = 0.25

    result = validate_mart(contract, df)

    assert result.failures == [
        r"fct_orders.sku: matches ^[A-Z]{3}-\d{4}$ — 1 of 4 rows break it, e.g. (shop=a, order_no=2)",
        "fct_orders.amount: between 0.5 and 1000 — 1 of 4 rows break it, e.g. (shop=b, order_no=1)",
    ]


def test_great_expectations_rules_run_with_their_kwargs():
    rule = QualityRule(name="a_few_orders", description="Orders arrive.", kind="great-expectations",
                       expectation="expect_table_row_count_to_be_between", kwargs={"min_value": 5})
    sql = QualityRule(name="by_dbt", description="", kind="sql", query="SELECT 1", must_be=0)
    contract = _orders([rule, sql])

    result = validate_mart(contract, _orders_frame())

    assert result.failures == ["fct_orders: a_few_orders (Orders arrive.) — observed 4"]
    assert len(expectation_suite(contract).expectations) == 1 + 2 + 1 + 1 + 1 + 1  # sql rule skipped


def test_an_unknown_expectation_is_a_contract_error():
    rule = QualityRule(name="typo", description="", kind="great-expectations",
                       expectation="expect_column_values_to_be_purple", kwargs={"column": "sku"})

    with pytest.raises(ContractError, match="typo"):
        expectation_suite(_orders([rule]))


def test_repeated_validations_give_the_same_answer(sessions):
    df = sessions_frame()
    results = [validate_mart(sessions, df) for _ in range(3)]
    assert all(r.passed for r in results)


def test_beyond_dbt_holds_only_the_rules_dbt_cannot_express(sessions):
    """When dbt's tests of the same run passed, the check runs the great-expectations rules alone:
    a column rule is dbt's (not checked twice), a rule only Great Expectations holds still fails."""
    df = sessions_frame()
    _unknown_device(df)  # an enum: dbt's accepted_values test
    assert validate_mart(sessions, df, only_beyond_dbt=True).passed

    _ends_before_start(df)  # a custom great-expectations rule: dbt has no test for it
    result = validate_mart(sessions, df, only_beyond_dbt=True)
    assert not result.passed
    assert result.failures == [
        f"fct_sessions: session_ends_after_start (A session cannot end before it starts.) — 1 of {ROWS} rows "
        "break it, e.g. session_key=s0017"]
