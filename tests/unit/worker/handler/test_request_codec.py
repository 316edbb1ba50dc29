"""HTTP request -> Input and Output -> HTTP answer, as DJL's RequestParser and front end do."""

from __future__ import annotations

from modelhost.worker.handler.codec import output_to_answer, request_to_input
from modelhost.worker.handler.djl import Output


def test_headers_become_properties_and_custom_attributes_are_split() -> None:
    inputs = request_to_input(
        [("content-type", "application/json"), ("X-Amzn-SageMaker-Custom-Attributes", "a=1; b = two ;junk")],
        [],
        b'{"x": 1}',
    )
    props = inputs.get_properties()
    assert props["content-type"] == "application/json"
    assert props["a"] == "1" and props["b"] == "two"
    assert inputs.get_property("x-amzn-sagemaker-custom-attributes") is None
    assert "junk" not in props
    assert inputs.get_as_json() == {"x": 1}
    assert inputs.content.get_keys() == ["data"]


def test_query_parameters_become_content() -> None:
    inputs = request_to_input([], [("q", "one"), ("r", "two")], b"body")
    assert inputs.content.get_keys() == ["q", "r", "data"]
    assert inputs.get_as_string("q") == "one"
    assert inputs.get_as_string() == "body"


def test_urlencoded_form_gives_one_entry_per_field() -> None:
    inputs = request_to_input([("Content-Type", "application/x-www-form-urlencoded")], [], b"a=1&b=hello+world")
    assert inputs.content.get_keys() == ["a", "b"]
    assert inputs.get_as_string("b") == "hello world"


def test_multipart_form_gives_one_entry_per_field() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n"
    )
    inputs = request_to_input([("content-type", "multipart/form-data; boundary=XyZ")], [], body)
    assert inputs.content.get_keys() == ["text", "file"]
    assert inputs.get_as_string("text") == "hello"
    assert inputs.get_as_bytes("file") == b"\x00\x01\x02"


def test_empty_body_is_still_not_an_empty_input() -> None:
    assert not request_to_input([], [], b"").is_empty()


def test_output_to_answer() -> None:
    assert output_to_answer(None).status == 204
    out = Output(code=201).add_property("Content-Type", "text/plain").add("first", key="a").add("body")
    answer = output_to_answer(out)
    assert (answer.status, answer.body) == (201, b"body")
    assert answer.headers == [("Content-Type", "text/plain")]
    assert output_to_answer(Output().add("only", key="x")).body == b"only"
    assert output_to_answer(Output()).body == b""
