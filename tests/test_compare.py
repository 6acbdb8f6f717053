"""Two studies compared claim by claim: what moved, on known tables."""

import pandas as pd

from bsnb import cli, compare


def study(tmp_path, name, rows):
    folder = tmp_path / name
    folder.mkdir()
    pd.DataFrame(rows, columns=["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "robust"]).to_csv(
        folder / "claims.csv", index=False)
    return folder


def test_compare_names_changed_labels_and_effects_outside_the_other_interval(tmp_path, capsys):
    a = study(tmp_path, "a", [("C1", "supported", 2.0, 1.5, 2.5, 8, True), ("C2", "inconclusive", 1.1, 0.9, 1.3, 8, False),
                              ("C3", "supported", 0.3, 0.29, 0.31, 7, True)])
    b = study(tmp_path, "b", [("C1", "supported", 2.2, 1.6, 2.8, 8, True), ("C2", "supported", 1.4, 1.2, 1.6, 8, False),
                              ("C3", "supported", 0.5, 0.45, 0.55, 7, True)])
    table = compare.compare(compare.read_claims(a), compare.read_claims(b)).set_index("claim")
    assert not table.loc["C1", "label_changed"] and table.loc["C1", "a_in_b"] and table.loc["C1", "b_in_a"]
    assert table.loc["C2", "label_changed"] and table.loc["C2", "b_in_a"] == False  # noqa: E712
    assert table.loc["C2", "a_in_b"] == False  # noqa: E712
    assert not table.loc["C3", "label_changed"] and table.loc["C3", "a_in_b"] == False  # noqa: E712 (effect moved)
    assert cli.main(["compare", str(a), str(b / "claims.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 labels changed (C2); none of the changed labels was robust in both studies" in out
    assert "2 effect(s) outside the other study's interval (C2, C3)" in out


def test_compare_says_which_file_is_missing(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "claims.csv does not exist" in capsys.readouterr().err
