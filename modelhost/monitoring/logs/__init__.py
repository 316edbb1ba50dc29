"""CloudWatch Logs over the endpoints' log files, read in place (AWS JSON 1.1, `Logs_20140328.<Operation>`).

Names (naming.py):
    log group   /aws/sagemaker/Endpoints/<EndpointName>          one per folder logs/<endpoint lower>/
    streams     <VariantName>/<variant lower>-<n>[-<copy>]       one per instance file <variant lower>-<n>[-<copy>].log
                modelhost/endpoint-events                        endpoint.log, the controller's events
    log group   /aws/sagemaker/TransformJobs                     every folder logs/transform-job.<job lower>/
    streams     <TransformJobName>/<variant lower>-<n>[-<copy>]  one per instance file of the job's instances
                <TransformJobName>/modelhost-events              the job's endpoint.log

Events (events.py): a line starting with a timestamp begins an event, the lines after it without one (a
traceback, print()s) continue it; an event holds at most 256 KiB. Served: DescribeLogGroups,
DescribeLogStreams, GetLogEvents, FilterLogEvents (what `aws logs tail --follow` calls). The server wires
`LogsApi.handle` for requests whose X-Amz-Target starts with `LOGS_TARGET_PREFIX`, and checks the caller in
its `authorize` hook (`LogsCall.action` on `LogsCall.resource_arn(region, account)`).

    api.py            the HTTP edge, LogsApi, LogsCall
    groups.py         DescribeLogGroups, DescribeLogStreams
    event_ops.py      GetLogEvents
    filtering.py      FilterLogEvents
    filter_pattern.py the term syntax (pure)
    reading.py        one stream's pages forward / backward under a budget
    store.py          folders and files as groups and streams; opens a stream with its index refreshed
    index.py          a file's checkpoints (an event start per 256 KiB, with time ranges)
    events.py         bytes -> events (the assembler is pure)
    timestamps.py     the timestamp a line starts with (pure)
    tokens.py         nextToken formats (pure)
    naming.py         names and ARNs (pure)
    errors.py         the error codes
"""

from modelhost.monitoring.logs.api import LOGS_TARGET_PREFIX, Authorize, LogsApi, LogsCall
from modelhost.monitoring.logs.naming import EndpointNames

__all__ = ["LOGS_TARGET_PREFIX", "Authorize", "EndpointNames", "LogsApi", "LogsCall"]
