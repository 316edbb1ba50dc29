from __future__ import annotations

import pytest

from modelhost.scheduler.catalog import gpu_count
from modelhost.scheduler.placement import quota_message


@pytest.mark.parametrize(
    ("instance_type", "gpus"),
    [
        ("ml.m5.xlarge", 0),
        ("ml.g5.2xlarge", 1),
        ("ml.g5.12xlarge", 4),
        ("ml.g5.24xlarge", 4),
        ("ml.g5.48xlarge", 8),
        ("ml.p4d.24xlarge", 8),
        ("ml.p3.8xlarge", 4),
        ("ml.g4dn.12xlarge", 4),
        ("ml.p5.4xlarge", 1),
        ("garbage", 0),
    ],
)
def test_gpu_counts(instance_type: str, gpus: int) -> None:
    assert gpu_count(instance_type) == gpus


def test_quota_message_has_sagemaker_shape() -> None:
    message = quota_message("ml.g5.24xlarge", 0, 0, 1)
    assert message.startswith("The account-level service limit 'ml.g5.24xlarge for endpoint usage' is 0 Instances, ")
    assert "with current utilization of 0 Instances and a request delta of 1 Instances." in message


def test_catalogue_names_are_instance_types_botocore_knows() -> None:
    import botocore.session

    from modelhost.scheduler.catalog import CATALOG

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariantInstanceType")
    assert set(CATALOG) <= set(shape.enum)
    g5 = CATALOG["ml.g5.48xlarge"]
    assert (g5.vcpus, g5.memory_gib, g5.gpus, g5.gpu_memory_gib) == (192, 768, 8, 24)
