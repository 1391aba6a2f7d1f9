"""Networks that learn from the products: fine-tuned e5 (`FineTunedE5`), its probabilities with a
linear model's on TF-IDF (`Blend`), and fine-tuned EfficientNet-Lite (`FineTunedEfficientNet`)."""

from rakuten.fine_tuning.blend import Blend
from rakuten.fine_tuning.e5_classifier import FineTunedE5
from rakuten.fine_tuning.picture_classifier import FineTunedEfficientNet

__all__ = ["Blend", "FineTunedE5", "FineTunedEfficientNet"]
