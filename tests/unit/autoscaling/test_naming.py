"""Resource ids, store keys and ARNs."""

from __future__ import annotations

import re

from modelhost.autoscaling import naming
from modelhost.autoscaling.naming import VariantRef, parse_resource_id


def test_resource_ids_parse_only_in_sagemaker_variant_form() -> None:
    assert parse_resource_id("endpoint/my-ep/variant/AllTraffic") == VariantRef("my-ep", "AllTraffic")
    for bad in (
        "endpoint/my-ep",
        "endpoint/-x/variant/v",
        "service/c/s",
        "endpoint/a/variant/b/c",
        "endpoint/a b/variant/v",
    ):
        assert parse_resource_id(bad) is None


def test_keys_ignore_the_endpoint_names_case_but_keep_the_rest() -> None:
    assert VariantRef("MyEp", "A").key == VariantRef("myep", "A").key
    assert VariantRef("ep", "A").key != VariantRef("ep", "a").key
    ref = VariantRef("ep", "v")
    assert naming.member_key(ref, "P1") != naming.member_key(ref, "p1")
    assert naming.escape("A^b") == "^a^^b" and naming.escape("A^b").lower() == naming.escape("A^b")


def test_arns_are_shaped_as_aws_shapes_them() -> None:
    ref = VariantRef("ep", "v")
    assert re.fullmatch(
        r"arn:aws:application-autoscaling:eu-west-1:1:scalable-target/[0-9a-f]{36}", naming.target_arn("eu-west-1", "1")
    )
    assert re.fullmatch(
        r"arn:aws:autoscaling:r:1:scalingPolicy:[0-9a-f-]{36}:resource/sagemaker/endpoint/ep/variant/v:policyName/p",
        naming.policy_arn("r", "1", ref, "p"),
    )
    assert re.fullmatch(
        r"TargetTracking-endpoint/ep/variant/v-AlarmLow-[0-9a-f-]{36}", naming.alarm_name(ref, "AlarmLow")
    )
    assert naming.alarm_arn("r", "1", "n") == "arn:aws:cloudwatch:r:1:alarm:n"
