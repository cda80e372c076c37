"""Placement policy settings: the prices that turn each cost term into CNY, and batch limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from topology.energy import (
    DEFAULT_CPU_WATTS_PER_CORE,
    DEFAULT_HOST_WATTS_PER_CARD,
    DEFAULT_UTILISATION,
    EnergyModel,
)

TERM_NAMES = ("energy", "carbon", "data_movement", "queue_wait", "reliability", "latency")


class PolicyConfig(BaseModel):
    """Weights and prices of the placement policy; the broker config embeds it as `placement`.

    Defaults and their sources are listed in docs/placement.md.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    carbon_price_cny_per_t: float = Field(
        100.0,
        ge=0,
        description=(
            "Price of one tonne of CO2 in CNY. Default near China's national ETS: 2024 average "
            "95.96 CNY/t (ICAP), year-end close 97.49 CNY/t (MEE)."
        ),
    )
    accelerator_hour_value_cny: float = Field(
        10.0,
        ge=0,
        description=(
            "Value of one accelerator-hour of a job's time in CNY; prices delay (data transfer, "
            "queueing) and lost work. Default is the order of domestic A800-class rental."
        ),
    )
    cpu_watts_per_core: float = Field(
        DEFAULT_CPU_WATTS_PER_CORE,
        ge=0,
        description=(
            "Host power per requested CPU core in W (a 128-core, 360 W server CPU); a job "
            "draws the larger of its cores' power and its cards' host share."
        ),
    )
    host_watts_per_card: float = Field(
        DEFAULT_HOST_WATTS_PER_CARD,
        ge=0,
        description=(
            "Host share of each card's server in W (CPUs, memory, NICs, fans); modelled as "
            "about half of a DGX A100's non-GPU maximum, (6.5 kW - 8 x 400 W) / 8."
        ),
    )
    card_utilisation: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_UTILISATION),
        description=(
            "Mean board power as a share of rated board power, per workload class "
            "(llm-training, vision-training, llm-inference, generic); modelled."
        ),
    )
    latency_cny_per_ms_replica_hour: float = Field(
        0.5,
        ge=0,
        description=(
            "Cost of 1 ms of demand-weighted RTT for one inference replica for one hour; large "
            "enough that 10 ms outweighs the east-west energy gap of an 8-card replica."
        ),
    )
    reliability_reference_cards: int = Field(
        256,
        ge=1,
        description=(
            "Job size (cards) at which a site's mtbf_hours applies; larger gang jobs are "
            "interrupted proportionally more often."
        ),
    )
    serving_restart_hours: float = Field(
        0.25,
        ge=0,
        description="Hours of service lost when an inference replica is interrupted and restarts.",
    )
    term_weights: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Multiplier per cost term name (energy, carbon, data_movement, queue_wait, "
            "reliability, latency); missing names weigh 1, 0 switches a term off."
        ),
    )
    pending_penalty_hours: float = Field(
        24.0,
        gt=0,
        description=(
            "Batch placement: leaving a job pending costs its cards' value for this many hours "
            "(doubled per 100 priority points) on top of its dearest feasible site."
        ),
    )
    pending_penalty_base: Literal["dearest", "cheapest"] = Field(
        "dearest",
        description=(
            "Batch placement: what a pending job is assumed to cost besides its cards' waiting "
            "value. 'dearest' (its dearest feasible site) makes placing always beat waiting; "
            "'cheapest' (it runs later at its cheapest site) prices only the wait, so a job is "
            "left pending when a dearer site costs more than waiting `pending_penalty_hours`."
        ),
    )
    batch_wait_model: Literal["penalty", "delay"] = Field(
        "delay",
        description=(
            "Batch placement: how waiting is priced when jobs compete for cards. 'penalty' "
            "charges only each job left pending (its pending penalty), so the batch starts the "
            "jobs that save most on their run, which are the long ones. 'delay' also charges "
            "each started job the wait its cards impose on the jobs left queued (duration x "
            "cards x accelerator_hour_value_cny x queued cards per card of the pools they wait "
            "for), which starts short jobs first and minimises total waiting."
        ),
    )
    batch_candidates_per_class: int = Field(
        16,
        ge=1,
        description="Batch placement: cheapest options per job class in the first LP round.",
    )
    batch_lp_max_classes: int = Field(
        3000,
        ge=0,
        description=(
            "Batch placement: solve the LP over job classes up to this many classes; with more "
            "(many distinct jobs) place jobs by regret and improve them by local search."
        ),
    )
    batch_milp_max_variables: int = Field(
        20_000,
        ge=0,
        description="Batch placement: solve the restricted problem as a MILP up to this size.",
    )

    @field_validator("term_weights")
    @classmethod
    def _known_terms(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(TERM_NAMES))
        if unknown:
            raise ValueError(f"unknown cost terms {unknown}; known: {list(TERM_NAMES)}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("term weights must be >= 0")
        return weights

    @field_validator("card_utilisation")
    @classmethod
    def _known_classes(cls, shares: dict[str, float]) -> dict[str, float]:
        EnergyModel(utilisation=shares)  # the energy model's own checks
        return shares

    def energy_model(self) -> EnergyModel:
        """The energy model (topology.energy) with these settings (checked when they were read)."""
        return EnergyModel.model_construct(
            utilisation=dict(self.card_utilisation),
            host_watts_per_card=self.host_watts_per_card,
            cpu_watts_per_core=self.cpu_watts_per_core,
        )

    def weight(self, term: str) -> float:
        """The multiplier of a cost term (1 unless configured)."""
        return self.term_weights.get(term, 1.0)
