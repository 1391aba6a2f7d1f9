"""Text features: raw product rows in, a sparse TF-IDF matrix out.

Everything here is a scikit-learn transformer, so the whole chain lives inside the logged model
and the model takes raw `designation` / `description` rows.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

TEXT_FIELDS = ("designation", "description", "text")
NORMALIZERS = (None, "stem", "lemma")

_TAG = re.compile(r"<[^>]*>")
_DIGITS = re.compile(r"\d+")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


class ProductField(TransformerMixin, BaseEstimator):
    """Raw product rows -> the texts of one field, NaN-safe.

    `field` is `designation`, `description` or `text` (the two joined). `description` may be
    missing or null: it is empty in a third of the products.
    """

    def __init__(self, field: str = "text"):
        self.field = field

    def fit(self, X, y=None):
        if self.field not in TEXT_FIELDS:
            raise ValueError(f"field must be one of {TEXT_FIELDS}, got {self.field!r}")
        return self

    def transform(self, X) -> list[str]:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a DataFrame of product rows, got {type(X).__name__}")
        if "designation" not in X.columns:
            raise ValueError(f"product rows need a 'designation' column (got {list(X.columns)})")
        designation = _as_texts(X["designation"])
        description = _as_texts(X["description"]) if "description" in X.columns else [""] * len(X)
        if self.field == "designation":
            return designation
        if self.field == "description":
            return description
        return [f"{a} {b}" for a, b in zip(designation, description)]


class TextCleaner(TransformerMixin, BaseEstimator):
    """The seed's cleaning: HTML, digits, punctuation, stop words, short words, case; then an
    optional offline stemmer (nltk Snowball) or lemmatiser (simplemma). Stateless."""

    def __init__(
        self,
        strip_html: bool = True,
        lowercase: bool = True,
        remove_digits: bool = True,
        remove_punctuation: bool = True,
        stop_words: tuple[str, ...] | None = ("fr", "en"),
        min_word_length: int = 2,
        normalizer: str | None = None,
        languages: tuple[str, ...] = ("fr", "en"),
    ):
        self.strip_html = strip_html
        self.lowercase = lowercase
        self.remove_digits = remove_digits
        self.remove_punctuation = remove_punctuation
        self.stop_words = stop_words
        self.min_word_length = min_word_length
        self.normalizer = normalizer
        self.languages = languages

    def fit(self, X, y=None):
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        return self

    def transform(self, X) -> list[str]:
        return [self.clean(text) for text in _as_texts(X)]

    def clean(self, text: str) -> str:
        if self.strip_html:
            text = _TAG.sub(" ", html.unescape(html.unescape(text)))
        if self.lowercase:
            text = text.lower()
        if self.remove_digits:
            text = _DIGITS.sub(" ", text)
        if self.remove_punctuation:
            text = _PUNCTUATION.sub(" ", text)
        stop = _stop_words(tuple(self.stop_words or ()))
        words = [w for w in text.split() if len(w) >= self.min_word_length and w not in stop]
        if self.normalizer == "stem":
            words = [_stem(w, self.languages[0]) for w in words]
        elif self.normalizer == "lemma":
            words = [_lemma(w, tuple(self.languages)) for w in words]
        return _SPACES.sub(" ", " ".join(words)).strip()


def _as_texts(X) -> list[str]:
    return ["" if pd.isna(t) else str(t) for t in X]


@lru_cache(maxsize=8)
def _stop_words(languages: tuple[str, ...]) -> frozenset[str]:
    """scikit-learn's English list; the `stop-words` package for the others (its English list
    is too broad for products: it drops "mug", "line", "microsoft")."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    from stop_words import get_stop_words

    words = set()
    for language in languages:
        words |= set(ENGLISH_STOP_WORDS) if language == "en" else set(get_stop_words(language))
    return frozenset(word.lower() for word in words)


@lru_cache(maxsize=200_000)
def _stem(word: str, language: str) -> str:
    return _stemmer(language).stem(word)


@lru_cache(maxsize=4)
def _stemmer(language: str):
    from nltk.stem.snowball import SnowballStemmer

    names = {"fr": "french", "en": "english", "de": "german", "it": "italian"}
    return SnowballStemmer(names.get(language, language))


@lru_cache(maxsize=200_000)
def _lemma(word: str, languages: tuple[str, ...]) -> str:
    import simplemma

    return simplemma.lemmatize(word, lang=languages)


def build_text_features(
    vectorizers: dict[str, dict],
    cleaning: dict | None = None,
    max_features: int | None = None,
) -> FeatureUnion:
    """A transformer from raw product rows to one sparse matrix (the vectorizers side by side).

    `vectorizers` maps a name to the options of one TF-IDF: `column` (designation, description or
    text = both), `cleaning` (overrides of the shared `cleaning` options, or false for none) and any
    `TfidfVectorizer` option. `max_features` caps every vocabulary (slow models set it).
    """
    if not vectorizers:
        raise ValueError("features need at least one vectorizer")
    transformers = []
    for name, options in vectorizers.items():
        options = dict(options)
        column = options.pop("column", "text")
        if column not in TEXT_FIELDS:
            raise ValueError(f"vectorizer {name!r}: column must be one of {TEXT_FIELDS}, got {column!r}")
        own_cleaning = options.pop("cleaning", None)
        if "ngram_range" in options:
            options["ngram_range"] = tuple(options["ngram_range"])
        if max_features is not None:
            options["max_features"] = min(max_features, options.get("max_features") or max_features)
        steps = [("field", ProductField(column))]
        if own_cleaning is not False:
            steps.append(("clean", TextCleaner(**_cleaner_options({**(cleaning or {}), **(own_cleaning or {})}))))
        steps.append(("tfidf", TfidfVectorizer(**options)))
        transformers.append((name, Pipeline(steps)))
    return FeatureUnion(transformers)


def _cleaner_options(options: dict) -> dict:
    options = dict(options)
    for key in ("stop_words", "languages"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    return options
