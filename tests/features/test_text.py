import numpy as np
import pandas as pd
import pytest

from rakuten import data
from rakuten.features.text import ProductField, TextCleaner, build_text_features
from tests.conftest import SAMPLE_DIR


def test_cleaner_removes_html_entities_digits_punctuation_and_stop_words():
    raw = "<p>Le Piscine &eacute;t&eacute; &amp; <b>pompe</b> 300x200mm - pour les enfants!</p>&#39;"
    assert TextCleaner().clean(raw) == "piscine pompe mm enfants"
    assert TextCleaner(stop_words=None).clean(raw) == "le piscine été pompe mm pour les enfants"


def test_cleaner_keeps_short_words_when_asked_and_digits_when_asked():
    cleaner = TextCleaner(remove_digits=False, min_word_length=1, stop_words=None)
    assert cleaner.clean("Jeu PS4 - 2 joueurs") == "jeu ps4 2 joueurs"
    assert TextCleaner().clean("Jeu PS4 - 2 joueurs") == "jeu ps joueurs"


def test_stemming_and_lemmatisation_are_offline_and_change_words():
    words = "chaussures enfants jouets"
    assert TextCleaner(normalizer="stem").clean(words) == "chaussur enfant jouet"
    assert TextCleaner(normalizer="lemma").clean(words) == "chaussure enfant jouet"
    with pytest.raises(ValueError, match="normalizer"):
        TextCleaner(normalizer="porter").fit(["x"])


def test_product_field_is_nan_safe_and_joins_text():
    rows = pd.DataFrame({"designation": ["Lampe", None], "description": [np.nan, "LED"]})
    assert ProductField("designation").fit_transform(rows) == ["Lampe", ""]
    assert ProductField("description").fit_transform(rows) == ["", "LED"]
    assert ProductField("text").fit_transform(rows) == ["Lampe ", " LED"]
    assert ProductField("text").fit_transform(rows[["designation"]]) == ["Lampe ", " "]
    with pytest.raises(ValueError, match="'designation' column"):
        ProductField().fit_transform(rows[["description"]])


def test_default_features_hold_word_and_char_vocabularies_per_field():
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=300)
    features = build_text_features(
        vectorizers={
            "designation_words": {"column": "designation", "ngram_range": [1, 2]},
            "designation_chars": {"column": "designation", "analyzer": "char_wb", "ngram_range": [2, 4],
                                  "cleaning": {"remove_digits": False, "stop_words": None}},
        },
        cleaning={"stop_words": ["fr", "en"], "min_word_length": 2},
    )
    matrix = features.fit_transform(products)
    words = features.transformer_list[0][1]["tfidf"].vocabulary_
    chars = features.transformer_list[1][1]["tfidf"].vocabulary_
    assert matrix.shape == (300, len(words) + len(chars))
    assert "le" not in words and any(" " in term for term in words)
    assert all(len(term) <= 4 for term in chars)


def test_max_features_caps_every_vocabulary():
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=300)
    features = build_text_features({"a": {"column": "text"}, "b": {"column": "designation"}}, max_features=50)
    assert features.fit_transform(products).shape == (300, 100)


def test_unknown_column_is_refused():
    with pytest.raises(ValueError, match="column must be one of"):
        build_text_features({"bad": {"column": "title"}})
