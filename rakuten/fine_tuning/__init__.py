"""Networks that learn from the products: fine-tuned e5 (`FineTunedE5`), its probabilities with a
linear model's on TF-IDF (`Blend`), fine-tuned EfficientNet-Lite (`FineTunedEfficientNet`), and several
fine-tunings of one network from their own seeds, averaged (`SeedEnsemble`)."""

from rakuten.fine_tuning.blend import Blend
from rakuten.fine_tuning.e5_classifier import FineTunedE5
from rakuten.fine_tuning.picture_classifier import FineTunedEfficientNet
from rakuten.fine_tuning.seed_ensemble import SeedEnsemble

__all__ = ["Blend", "FineTunedE5", "FineTunedEfficientNet", "SeedEnsemble"]
