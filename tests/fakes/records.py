"""Records for tests: typed endpoints, configs and models built in one line."""

from __future__ import annotations

from modelhost.resources.endpoint import Endpoint, PendingUpdate, VariantSpec, initial_state
from modelhost.resources.endpoint_config import ProductionVariant
from modelhost.resources.model import Container, Model
from modelhost.resources.status import EndpointStatus

NOW = 1_700_000_000.0


def model(name: str = "m", url: str = "file:///models/m") -> Model:
    return Model(name=name, arn=f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}", created=NOW,
                 container=Container(image="djl-inference", model_data_url=url))  # fmt: skip


def variant_spec(
    name: str = "AllTraffic", count: int = 1, model_name: str = "m", url: str | None = None
) -> VariantSpec:
    variant = ProductionVariant(
        name=name,
        model_name=model_name,
        instance_type="ml.m5.large",
        initial_instance_count=count,
        download_timeout_s=30.0,
        startup_timeout_s=30.0,
    )
    return VariantSpec(variant=variant, model=model(model_name, url or f"file:///models/{model_name}"))


def endpoint(
    name: str = "ep",
    status: EndpointStatus = EndpointStatus.CREATING,
    variants: tuple[VariantSpec, ...] | None = None,
    pending: tuple[VariantSpec, ...] | None = None,
) -> Endpoint:
    specs = variants or (variant_spec(),)
    update = None
    if pending is not None:
        update = PendingUpdate("new", pending, tuple(initial_state(s.variant, NOW) for s in pending), NOW)
    return Endpoint(
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name.lower()}",
        config_name="cfg",
        status=status,
        created=NOW,
        modified=NOW,
        region="us-east-1",
        variants=specs,
        states=tuple(initial_state(s.variant, NOW) for s in specs),
        pending=update,
    )
