"""SageMaker asynchronous inference: InvokeEndpointAsync's durable queue, its dispatcher, SNS notifications and
the backlog metrics (docs/async.md)."""
