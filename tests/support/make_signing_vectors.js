// Signing test vectors computed by Node's own crypto, the implementation the vendor SDK uses.
//
//   node tests/support/make_signing_vectors.js > tests/data/signing_vectors.json
//       regenerates the committed vectors;
//   node tests/support/make_signing_vectors.js --stdin < cases.json
//       reads [{token, account_id, workspace_id, body}, ...] and prints them with key and signature
//       (used by the live cross-check in tests/unit/test_signing.py).
"use strict";
const crypto = require("crypto");

function compute(c) {
  // Same call as the SDK: ids are the input key material, the token is the salt.
  const key = Buffer.from(
    crypto.hkdfSync("sha256", Buffer.from(c.account_id + c.workspace_id, "utf8"), Buffer.from(c.token, "utf8"), "hmac-signing", 32),
  );
  const signature = crypto.createHmac("sha256", key).update(Buffer.from(c.body, "utf8")).digest("hex");
  return { ...c, key_hex: key.toString("hex"), signature_hex: signature };
}

const DOC_BODY =
  '[{"account_id":"68911b7ad58ad825ec00c5ef","workspace_id":"68911b7ad825ec00c5ef","user_id":"u1",' +
  '"event_category":"Deposit","event_name":"Successful Deposit","event_id":"evt_1",' +
  '"event_time":"2024-01-15T10:30:00Z","amount":500,"payment_method":"bank","transaction_id":"txn_1"}]';

const CASES = [
  { name: "docs/ingest-api.md vector", token: "tok_test_123", account_id: "68911b7ad58ad825ec00c5ef", workspace_id: "68911b7ad825ec00c5ef", body: DOC_BODY },
  { name: "non-ASCII token", token: "tøken-ü-\u{1F511}", account_id: "acc_1", workspace_id: "ws_1", body: '[{"user_id":"u1"}]' },
  { name: "non-ASCII ids", token: "tok_live_abc", account_id: "konto-é", workspace_id: "ワーク", body: '[{"name":"Zoë"}]' },
  { name: "token longer than the HMAC block", token: "t".repeat(40) + "0123456789".repeat(8), account_id: "a", workspace_id: "b", body: "[]" },
  { name: "empty array body", token: "tok", account_id: "68911b7ad58ad825ec00c5ef", workspace_id: "68911b7ad825ec00c5ef", body: "[]" },
  { name: "unicode and escapes in body", token: "eyJhbGciOiJIUzI1NiJ9.e30.sig-_", account_id: "acct", workspace_id: "space",
    body: '[{"t":"line\\nbreak \\"q\\" \u2028 ☃ \u{1F600} \\ud800","n":1e+21,"m":1.5e-7,"10":true}]' },
  { name: "ids that only differ in where they split", token: "tok", account_id: "abc", workspace_id: "def", body: '{"a":1}' },
  { name: "ids that only differ in where they split (2)", token: "tok", account_id: "ab", workspace_id: "cdef", body: '{"a":1}' },
];

function main() {
  if (process.argv.includes("--stdin")) {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => {
      const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      process.stdout.write(JSON.stringify(cases.map(compute)) + "\n");
    });
    return;
  }
  process.stdout.write(JSON.stringify({ generator: "tests/support/make_signing_vectors.js", vectors: CASES.map(compute) }, null, 2) + "\n");
}

main();
