"""The data a model learned from (`DataOf`): what a run and a registered version record of it, and
what the registry's rule holds a candidate's data against (`rakuten.data_identity.relation`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataOf:
    """The data a model learned from: the products its data offered and how many it drew."""

    dataset: str  # the runs table's name of it (`rakuten-sample`, `rakuten-full-images`...)
    population: str  # digest of the ids of every labelled row the data offered
    population_rows: int
    rows: int  # rows drawn from them (train and test parts)
    ids: tuple | None = None  # the population's ids, when at hand

    @classmethod
    def of_tags(cls, tags: dict) -> DataOf | None:
        """From a version's or run's tags; None for one registered before the rule existed."""
        if "data_population" not in tags or "data_rows" not in tags:
            return None
        return cls(tags.get("dataset", "?"), tags["data_population"], int(tags.get("data_population_rows", 0)),
                   int(tags["data_rows"]))

    def tags(self) -> dict[str, str]:
        return {"dataset": self.dataset, "data_population": self.population,
                "data_population_rows": str(self.population_rows), "data_rows": str(self.rows)}

    def describe(self) -> str:
        drawn = "" if self.rows == self.population_rows else f"{self.rows:,} of "
        return f"{drawn}{self.population_rows:,} rows of {self.dataset}"
