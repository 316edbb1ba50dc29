"""Instances whose node prepares the model (the Ray launcher): the server fetches nothing, hands the model data's
location on, and leaves GPU numbering to the cluster (no ledger: two instances may both be "GPU 0")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.controller.instances import InstanceStarter
from modelhost.controller.preparation import NodePreparer
from modelhost.resources.endpoint import VariantSpec
from modelhost.resources.endpoint_config import ProductionVariant
from modelhost.resources.model import Container, Model
from modelhost.scheduler.inventory import GIB, Gpu, Inventory
from modelhost.storage.uris import Layout
from tests.fakes.clock import FakeClock
from tests.fakes.launcher import FakeLauncher

ONE_GPU_NODE = Inventory(gpus=(Gpu(0, 24 * GIB),), cpus=8, memory_bytes=32 * GIB)


def _spec(url: str, instance_type: str = "ml.g5.xlarge") -> VariantSpec:
    container = Container(image="djl", model_data_url=url, environment={"OPTION_TENSOR_PARALLEL_DEGREE": "1"})
    return VariantSpec(
        variant=ProductionVariant(name="v", model_name="m", instance_type=instance_type),
        model=Model(name="m", arn="arn:m", created=0.0, container=container),
    )


def test_the_node_gets_the_location_and_the_server_fetches_nothing(tmp_path: Path) -> None:
    progress: list[str] = []
    prepared = asyncio.run(
        NodePreparer(tmp_path / "empty").prepare(
            _spec("s3://bucket/model.tar.gz").container, download_timeout_s=60, install_timeout_s=30,
            progress=progress.append,
        )
    )  # fmt: skip
    assert prepared.node_data is not None
    assert prepared.node_data.source is not None and prepared.node_data.source.uri == "s3://bucket/model.tar.gz"
    assert prepared.node_data.source.layout is Layout.ARCHIVE
    assert (prepared.node_data.download_timeout_s, prepared.node_data.install_timeout_s) == (60, 30)
    assert list(prepared.model_dir.iterdir()) == []  # nothing was downloaded here
    assert progress == ["model data s3://bucket/model.tar.gz is fetched by the node of each instance"]


def test_without_a_ledger_every_instance_is_sized_against_one_node(tmp_path: Path) -> None:
    launcher = FakeLauncher(tmp_path / "logs")
    starter = InstanceStarter(launcher, ONE_GPU_NODE, None, lambda env, model_ids: dict(env), FakeClock(),
                              base_environment={})  # fmt: skip
    spec = _spec("https://example.com/model.tar.gz")

    async def start_two() -> None:
        prepared = await NodePreparer(tmp_path / "empty").prepare(
            spec.container, download_timeout_s=60, install_timeout_s=30, progress=lambda _: None
        )
        for index in range(2):  # a ledger would refuse GPU 0 twice; the cluster gives each its own
            await starter.start_instance("ep", spec, prepared, index)

    asyncio.run(start_two())
    assert [r.gpu_ids for r in launcher.started] == [(0,), (0,)]
    assert all(r.node_data is not None and r.copies == 1 for r in launcher.started)
    assert [r.environment.get("OPTION_TENSOR_PARALLEL_DEGREE") for r in launcher.started] == ["1", "1"]
