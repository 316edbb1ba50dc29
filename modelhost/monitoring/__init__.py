"""CloudWatch metrics: the durable metric store and the CloudWatch API (query, awsJson1_0, rpc-v2-cbor) over it."""
