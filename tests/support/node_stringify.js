// Test helper: for every input line, write JSON.stringify(JSON.parse(line)) as one output line.
// The Python side sends ASCII-only JSON (non-ASCII and lone surrogates as \u escapes, floats in
// shortest round-trip form), so JSON.parse rebuilds exactly the value the test serialized locally,
// and JSON.parse orders array-index keys the same way any JavaScript object does.
"use strict";
const readline = require("readline");

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on("line", (line) => {
  let reply;
  try {
    reply = JSON.stringify(JSON.parse(line));
  } catch (err) {
    // One line back per line in, always, so the reader never blocks; "!" cannot start JSON text.
    reply = "!" + String(err && err.message).replace(/[\r\n]/g, " ");
  }
  process.stdout.write(reply + "\n");
});
