// Validates AsyncAPI 3.0 documents written by `mesh export asyncapi`.
//
// usage: node validate.mjs [--schema-only] FILE...   (YAML or JSON)
// Prints one JSON array on stdout, one entry per file:
//   {"file", "schema_errors": [{"path", "message"}], "parser_errors": [...], "parser_warnings": [...]}
// schema_errors come from the official AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs) checked
// with ajv; parser_* from @asyncapi/parser (its own validation: references, bindings, rules),
// skipped with --schema-only (the parser takes seconds to load and about one a document).
// Exit status 0 when every file is free of errors (warnings allowed), 1 otherwise, 2 on bad use.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

import Ajv from "ajv";
import addFormats from "ajv-formats";
import yaml from "js-yaml";

const require = createRequire(import.meta.url);
const specSchema = require("@asyncapi/specs/schemas/3.0.0-without-$id.json");

const args = process.argv.slice(2);
const schemaOnly = args[0] === "--schema-only";
const files = schemaOnly ? args.slice(1) : args;
if (files.length === 0) {
  process.stderr.write("usage: node validate.mjs [--schema-only] FILE...\n");
  process.exit(2);
}

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const checkSchema = ajv.compile(specSchema);
const parser = schemaOnly ? null : new (await import("@asyncapi/parser")).Parser();
const ERROR = 0;

const results = [];
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const entry = { file, schema_errors: [], parser_errors: [], parser_warnings: [] };
  let document;
  try {
    document = yaml.load(text);
  } catch (error) {
    entry.schema_errors.push({ path: "", message: `not YAML/JSON: ${error.message}` });
    results.push(entry);
    continue;
  }
  if (!checkSchema(document)) {
    entry.schema_errors = checkSchema.errors.map((e) => ({
      path: e.instancePath,
      message: `${e.message} ${JSON.stringify(e.params)}`,
    }));
  }
  if (parser === null) {
    results.push(entry);
    continue;
  }
  const { diagnostics } = await parser.parse(text, { source: file });
  for (const d of diagnostics) {
    const item = { path: d.path.join("/"), code: String(d.code), message: d.message };
    (d.severity === ERROR ? entry.parser_errors : entry.parser_warnings).push(item);
  }
  results.push(entry);
}
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
process.exit(results.some((r) => r.schema_errors.length || r.parser_errors.length) ? 1 : 0);
