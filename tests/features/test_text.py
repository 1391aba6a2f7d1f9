import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from rakuten import data
from rakuten.features.text import ProductFields, WordCharTfidf, build_text_features, word_options
from tests.helpers.stores import SAMPLE_DIR

RAW = "<p>Le Piscine &eacute;t&eacute; &amp; <b>pompe</b> 300x200mm - pour les enfants!</p>&#39;"


def words(text: str, **cleaning) -> list[str]:
    """The tokens the features' word vectoriser makes of one designation."""
    fields = ProductFields(("designation",)).fit_transform(pd.DataFrame({"designation": [text]}))
    return TfidfVectorizer(**word_options(**cleaning)).build_analyzer()(fields["designation"][0])


def test_words_lose_html_entities_digits_punctuation_and_stop_words():
    assert words(RAW) == ["piscine", "pompe", "mm", "enfants"]
    assert words(RAW, stop_words=None) == ["le", "piscine", "été", "pompe", "mm", "pour", "les", "enfants"]


def test_words_keep_short_words_and_digits_when_asked():
    assert words("Jeu PS4 - 2 joueurs", remove_digits=False, min_word_length=1, stop_words=None) == [
        "jeu", "ps4", "2", "joueurs"]
    assert words("Jeu PS4 - 2 joueurs") == ["jeu", "ps", "joueurs"]
    assert words("C'est l'été: 2x plus", remove_punctuation=False, stop_words=None) == ["c'est", "l'été:", "plus"]


def test_stemming_and_lemmatisation_are_offline_and_change_words():
    assert words("chaussures enfants jouets", normalizer="stem") == ["chaussur", "enfant", "jouet"]
    assert words("chaussures enfants jouets", normalizer="lemma") == ["chaussure", "enfant", "jouet"]
    with pytest.raises(ValueError, match="normalizer"):
        word_options(normalizer="porter")


def test_product_fields_are_nan_safe_and_join_text():
    rows = pd.DataFrame({"designation": ["Lampe", None], "description": [np.nan, "LED"]})
    fields = ProductFields(("designation", "description", "text")).fit_transform(rows)
    assert fields["designation"].tolist() == ["Lampe", ""]
    assert fields["description"].tolist() == ["", "LED"]
    assert fields["text"].tolist() == ["Lampe ", " LED"]
    assert ProductFields().fit_transform(rows[["designation"]])["text"].tolist() == ["Lampe ", " "]
    with pytest.raises(ValueError, match="'designation' column"):
        ProductFields().fit_transform(rows[["description"]])


@pytest.mark.parametrize("options", [
    {"ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2},
    {"ngram_range": (1, 3), "max_features": 300, "max_df": 0.5},
])
def test_word_by_word_char_ngrams_equal_scikit_learns_char_wb(options):
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=600)
    texts = ProductFields(("text",)).fit_transform(products)["text"]
    reference = TfidfVectorizer(analyzer="char_wb", **options)
    ours = WordCharTfidf(**options)
    assert np.allclose(reference.fit_transform(texts[:400]).toarray(), ours.fit_transform(texts[:400]).toarray())
    assert ours.vocabulary_ == reference.vocabulary_
    unseen = pd.concat([texts[400:], pd.Series(["", "   "])])
    assert np.allclose(reference.transform(unseen).toarray(), ours.transform(unseen).toarray())


def test_default_features_hold_word_and_char_vocabularies_per_field():
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=300)
    features = build_text_features(
        vectorizers={
            "designation_words": {"column": "designation", "ngram_range": [1, 2]},
            "designation_chars": {"column": "designation", "analyzer": "char_wb", "ngram_range": [2, 4]},
        },
        cleaning={"stop_words": ["fr", "en"], "min_word_length": 2},
    )
    matrix = features.fit_transform(products)
    vectorizers = dict((name, v) for name, v, _ in features["vectorizers"].transformers_)
    word_vocabulary = vectorizers["designation_words"].vocabulary_
    chars = vectorizers["designation_chars"].vocabulary_
    assert matrix.shape == (300, len(word_vocabulary) + len(chars))
    assert "le" not in word_vocabulary and any(" " in term for term in word_vocabulary)
    assert all(len(term) <= 4 for term in chars)


def test_max_features_caps_every_vocabulary():
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=300)
    features = build_text_features({"a": {"column": "text"}, "b": {"column": "designation"}}, max_features=50)
    assert features.fit_transform(products).shape == (300, 100)


def test_unknown_column_and_cleaning_of_characters_are_refused():
    with pytest.raises(ValueError, match="column must be one of"):
        build_text_features({"bad": {"column": "title"}})
    with pytest.raises(ValueError, match="word analysers only"):
        build_text_features({"c": {"analyzer": "char_wb", "cleaning": {"remove_digits": False}}})
