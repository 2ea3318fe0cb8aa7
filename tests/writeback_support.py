"""Helpers of the writeback tests: stream records read from moto (`MotoStream`); the records
built like Lambda delivers them, the mapping config, the item shape, the connection and the
round-trip counter live in `tools.localpipe.writeback_records` (the bench uses them too, and
tools never import tests)."""

from __future__ import annotations

from typing import Any

import boto3

from tools.localpipe.lambda_events import to_lambda_record
from tools.localpipe.writeback_records import (
    ACCOUNT,
    REGION,
    Records,
    WireCounter,
    config,
    item,
    pg_connect,
    stream_arn,
)

__all__ = ["ACCOUNT", "REGION", "MotoStream", "Records", "WireCounter", "config", "item",
           "pg_connect", "stream_arn"]


class MotoStream:
    """A moto DynamoDB table with a NEW_AND_OLD_IMAGES stream, read from its start."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        desc = self.ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        self.arn = desc["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """Everything new on the stream since the last read, as Lambda would deliver it
        (Lambda adds the stream's ARN to each record)."""
        out = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = out["NextShardIterator"]
        return [to_lambda_record(r, self.arn, REGION) for r in out["Records"]]
