"""Networks that learn from the products: fine-tuned e5 (`FineTunedE5`), and its probabilities with
a linear model's on TF-IDF (`Blend`)."""

from rakuten.fine_tuning.blend import Blend
from rakuten.fine_tuning.e5_classifier import FineTunedE5

__all__ = ["Blend", "FineTunedE5"]
