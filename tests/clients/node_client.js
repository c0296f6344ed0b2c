// A Node.js client generated at run time from proto/ (no Python involved).
//
//   node tests/clients/node_client.js 127.0.0.1:50051
//
// Loads the contract with keepCase (field names as written in the .proto),
// calls QueryData, QueryDataStream and CheckTableExists on a running sidecar,
// and exits non-zero with the reason when an answer is not the expected one.
// Run by tests/test_node_client.py; its packages come from `npm ci` here.
"use strict";

const assert = require("node:assert/strict");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.join(__dirname, "..", "..", "proto");
const PROTO_FILE = "clickhouse/sidecar/v1/sidecar.proto";
const DEADLINE_MS = 20000;

function loadService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  return loaded.clickhouse.sidecar.v1.ClickHouseSidecar;
}

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function serverStream(client, method, request) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const call = client[method](request, { deadline: deadline() });
    call.on("data", (message) => messages.push(message));
    call.on("error", reject);
    call.on("end", () => resolve(messages));
  });
}

async function checkQueryData(client) {
  const response = await unary(client, "QueryData", { sql: "SELECT 1 AS one" });

  assert.notEqual(response.query_id, "", "QueryData: query_id is empty");
  assert.deepEqual(
    response.columns.map((c) => [c.name, c.type]),
    [["one", "UInt8"]],
  );
  assert.equal(response.rows.length, 1);
  const value = response.rows[0].values[0];
  assert.equal(value.kind, "uint64_value");
  assert.equal(value.uint64_value, "1");
}

async function checkQueryDataStream(client) {
  const request = {
    sql: "SELECT number AS n FROM system.numbers LIMIT 10",
    batch_rows: 4,
  };
  const messages = await serverStream(client, "QueryDataStream", request);

  assert.notEqual(messages[0].query_id, "", "QueryDataStream: no query_id");
  assert.deepEqual(
    messages[0].columns.map((c) => c.name),
    ["n"],
  );
  const numbers = messages.flatMap((m) =>
    m.rows.map((row) => row.values[0].uint64_value),
  );
  assert.deepEqual(numbers, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.ok(messages.every((m) => m.rows.length <= 4), "batch_rows ignored");
}

async function checkTableExists(client) {
  const present = { database: "system", table: "numbers" };
  const missing = { database: "system", table: "no_such_table_for_node" };

  const yes = await unary(client, "CheckTableExists", present);
  const no = await unary(client, "CheckTableExists", missing);

  assert.equal(yes.exists, true, "system.numbers should exist");
  assert.equal(no.exists, false, "a missing table should not exist");
}

async function main() {
  const target = process.argv[2];
  if (!target) {
    throw new Error("usage: node node_client.js HOST:PORT");
  }
  const Service = loadService();
  const client = new Service(target, grpc.credentials.createInsecure());
  try {
    await checkQueryData(client);
    console.log("QueryData: ok");
    await checkQueryDataStream(client);
    console.log("QueryDataStream: ok");
    await checkTableExists(client);
    console.log("CheckTableExists: ok");
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(`node client failed: ${error.stack || error}`);
  process.exit(1);
});
