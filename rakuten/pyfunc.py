"""What a logged model is to its users: raw product rows in, `prdtypecode` integers out.

`ProductClassifier` wraps a fitted scikit-learn / imbalanced-learn pipeline as an MLflow pyfunc,
so `mlflow.pyfunc.load_model(uri).predict(df)` and `mlflow models serve` work on raw rows.
"""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

LABEL = "prdtypecode"

TEXT_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "designation"), ColSpec("string", "description", required=False)]),
    outputs=Schema([ColSpec("long", LABEL)]),
    params=ParamSchema([ParamSpec("return_proba", "boolean", False), ParamSpec("top_k", "long", 3)]),
)


class ProductClassifier(mlflow.pyfunc.PythonModel):
    """Pyfunc over a fitted pipeline saved as the artifact `pipeline` (joblib).

    `predict(df)` returns a DataFrame with one column, `prdtypecode` (int64), indexed like `df`.
    `predict(df, params={"return_proba": True, "top_k": k})` adds `probability` (of the predicted
    class) and `top_k` (a list of {prdtypecode, probability}); only for pipelines that have
    `predict_proba`.
    """

    def load_context(self, context) -> None:
        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        rows = _as_rows(model_input)
        params = params or {}
        if not params.get("return_proba"):
            codes = np.asarray(self.pipeline.predict(rows)).astype("int64")
            return pd.DataFrame({LABEL: codes}, index=rows.index)
        return self._with_probabilities(rows, int(params.get("top_k", 3)))

    def _with_probabilities(self, rows: pd.DataFrame, top_k: int) -> pd.DataFrame:
        if not hasattr(self.pipeline, "predict_proba"):
            raise MlflowException(  # the scoring server answers 400 with this message
                f"{type(self.pipeline[-1]).__name__} gives no probabilities; "
                "train it with model.calibrate=true to get calibrated ones",
                error_code=INVALID_PARAMETER_VALUE,
            )
        proba = self.pipeline.predict_proba(rows)
        classes = np.asarray(self.pipeline.classes_).astype("int64")
        order = np.argsort(-proba, axis=1)[:, : max(1, top_k)]
        best = order[:, 0]
        return pd.DataFrame(
            {
                LABEL: classes[best],
                "probability": proba[np.arange(len(rows)), best],
                "top_k": [
                    [{LABEL: int(classes[j]), "probability": float(p[j])} for j in row_order]
                    for p, row_order in zip(proba, order)
                ],
            },
            index=rows.index,
        )


def _as_rows(model_input) -> pd.DataFrame:
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    if "designation" not in model_input.columns:
        raise MlflowException(f"product rows need a 'designation' column (got {list(model_input.columns)})",
            error_code=INVALID_PARAMETER_VALUE,
        )
    rows = model_input.copy()
    if "description" not in rows.columns:
        rows["description"] = ""
    for column in ("designation", "description"):
        rows[column] = rows[column].astype(object).where(rows[column].notna(), "").astype(str)
    return rows


# Models-from-code: MLflow loads this file and takes the model declared here.
mlflow.models.set_model(ProductClassifier())
