"""The local pipeline: the AWS services that cannot run on this machine, stood in for around
the project's real handlers (see docs/e2e.md). Used by the end-to-end tests and by
`python -m tools.demo`; not a product component, nothing here is deployed.

| module | stands in for |
| --- | --- |
| `aws` | an AWS account: moto, fake credentials, one region (`moto_world`) |
| `servers` | the legacy databases: real PostgreSQL / MariaDB on loopback (Debian packages) |
| `cdc`, `binlog_cdc`, `dmsvalues` | DMS: logical-slot / binlog CDC into moto's DynamoDB |
| `esm`, `lambda_events` | Lambda's DynamoDB stream event source mapping and its event JSON |
| `fanin_adapter` | the fan-in function, called in-process with the harness's clients |
| `consumer` | a bus consumer keeping a replica by the consumer rule (docs/bus.md) |
| `harness` | `Pipeline`: all of the above, stepped explicitly |

Nothing here imports pytest: the tests' fixtures (tests/conftest.py, tests/servers.py) wrap it.
"""
