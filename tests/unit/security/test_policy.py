"""The identity-policy evaluator, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.security.policy import Decision, PolicyError, evaluate, matches, parse_policy

EP = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/chat"
MODEL = "arn:aws:sagemaker:us-east-1:123456789012:model/chat"


def allow(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


CASES: list[tuple[str, list[dict[str, Any]] | dict[str, Any], str, str, Decision]] = [
    ("wildcard service", [allow("sagemaker:*")], "sagemaker:CreateModel", MODEL, Decision.ALLOW),
    ("one object statement", allow("sagemaker:InvokeEndpoint"), "sagemaker:InvokeEndpoint", EP, Decision.ALLOW),
    ("exact action only", [allow("sagemaker:InvokeEndpoint")], "sagemaker:CreateModel", MODEL, Decision.IMPLICIT_DENY),
    ("case-insensitive action", [allow("SageMaker:invokeendpoint")], "sagemaker:InvokeEndpoint", EP, Decision.ALLOW),
    ("prefix wildcard", [allow("sagemaker:Describe*")], "sagemaker:DescribeEndpoint", EP, Decision.ALLOW),
    ("prefix wildcard miss", [allow("sagemaker:Describe*")], "sagemaker:DeleteEndpoint", EP, Decision.IMPLICIT_DENY),
    ("question mark", [allow("sagemaker:?reateModel")], "sagemaker:CreateModel", MODEL, Decision.ALLOW),
    ("action list", [allow(["sagemaker:List*", "sagemaker:InvokeEndpoint*"])],
     "sagemaker:InvokeEndpointWithResponseStream", EP, Decision.ALLOW),
    ("resource match", [allow("sagemaker:*", "arn:aws:sagemaker:*:*:endpoint/chat")],
     "sagemaker:InvokeEndpoint", EP, Decision.ALLOW),
    ("resource miss", [allow("sagemaker:*", "arn:aws:sagemaker:*:*:endpoint/other")],
     "sagemaker:InvokeEndpoint", EP, Decision.IMPLICIT_DENY),
    ("resource is case-sensitive", [allow("sagemaker:*", "arn:aws:sagemaker:*:*:endpoint/CHAT")],
     "sagemaker:InvokeEndpoint", EP, Decision.IMPLICIT_DENY),
    ("resource ? wildcard", [allow("sagemaker:*", "arn:aws:sagemaker:*:*:endpoint/ch?t")],
     "sagemaker:InvokeEndpoint", EP, Decision.ALLOW),
    ("deny beats allow", [allow("sagemaker:*"), deny("sagemaker:Delete*")], "sagemaker:DeleteEndpoint", EP,
     Decision.EXPLICIT_DENY),
    ("deny first still beats allow", [deny("sagemaker:Delete*"), allow("*")], "sagemaker:DeleteModel", MODEL,
     Decision.EXPLICIT_DENY),
    ("deny elsewhere", [allow("sagemaker:*"), deny("sagemaker:Delete*")], "sagemaker:CreateModel", MODEL,
     Decision.ALLOW),
    ("not action", [{"Effect": "Allow", "NotAction": "sagemaker:Delete*", "Resource": "*"}],
     "sagemaker:CreateModel", MODEL, Decision.ALLOW),
    ("not action excluded", [{"Effect": "Allow", "NotAction": "sagemaker:Delete*", "Resource": "*"}],
     "sagemaker:DeleteModel", MODEL, Decision.IMPLICIT_DENY),
    ("not resource", [{"Effect": "Deny", "Action": "*", "NotResource": EP}, allow("*")],
     "sagemaker:InvokeEndpoint", EP, Decision.ALLOW),
    ("not resource denies others", [{"Effect": "Deny", "Action": "*", "NotResource": EP}, allow("*")],
     "sagemaker:CreateModel", MODEL, Decision.EXPLICIT_DENY),
    ("other service", [allow("s3:*")], "sagemaker:CreateModel", MODEL, Decision.IMPLICIT_DENY),
]


@pytest.mark.parametrize(("statements", "action", "resource", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_evaluate(statements: Any, action: str, resource: str, expected: Decision) -> None:
    policy = {"Version": "2012-10-17", "Statement": statements}
    assert evaluate(parse_policy(policy), action, resource) is expected


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "JSON object"),
        ({"Statement": []}, "non-empty"),
        ({"Version": "2020-01-01", "Statement": [allow("*")]}, "Version"),
        ({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}, "Effect"),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "*"}]}, "Resource"),
        ({"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}, "Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}, "Condition"),
    ],
)
def test_bad_policies_say_what_to_fix(document: Any, words: str) -> None:
    with pytest.raises(PolicyError, match=words):
        parse_policy(document)


def test_wildcards_do_not_treat_regex_characters_specially() -> None:
    assert matches("a.b", "a.b", ignore_case=False)
    assert not matches("a.b", "axb", ignore_case=False)
    assert matches("arn:*:endpoint/[x]", "arn:aws:endpoint/[x]", ignore_case=False)
