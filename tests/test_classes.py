"""The short names shipped beside the 27 product type codes."""

from rakuten import data, evaluate
from rakuten.classes import CLASS_NAMES, labelled


def test_every_code_of_the_challenge_has_one_distinct_name(shared_dir):
    codes = set(data.read_labels(data.find_file(shared_dir, data.Y_FILE)).unique())
    assert set(CLASS_NAMES) == codes and len(codes) == 27
    assert len(set(CLASS_NAMES.values())) == 27 and all(CLASS_NAMES.values())


def test_names_show_beside_codes_in_the_report_and_an_unknown_code_stays_a_number():
    _, text = evaluate.report([2583, 2583, 10, 99999], [2583, 10, 10, 99999], [10, 2583, 99999])
    assert "2583 swimming pools" in text and "10 old books" in text
    assert labelled(99999) == "99999"
