// Compiles every published JSON Schema with Ajv 8 in strict mode and the
// 2020-12 draft, the way a consumer would: `new Ajv2020({strict: true})`
// plus ajv-formats for the standard formats (date-time, uuid).
//
// usage: node ajv-check.mjs <schemas dir> <npm prefix holding ajv, ajv-formats>
// Prints one line per refused schema and exits 1 if there is any.
import { createRequire } from "node:module";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const [dir, prefix] = process.argv.slice(2).map((p) => resolve(p));
// ajv lives in an npm prefix under target/, not beside this script.
const require = createRequire(join(prefix, "node_modules", "index.js"));
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

function schemaFiles(d) {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? schemaFiles(join(d, e.name)) : e.name.endsWith(".json") ? [join(d, e.name)] : [],
  );
}

// Ajv only logs some strict-mode findings; a warning a consumer sees on every
// start counts as a refusal here.
let current = "";
const problems = [];
const logger = {
  log() {},
  warn: (...args) => problems.push(`${current}: warning: ${args.join(" ")}`),
  error: (...args) => problems.push(`${current}: ${args.join(" ")}`),
};
const ajv = new Ajv2020({ strict: true, logger });
addFormats(ajv);

// All in one instance first, so that $refs between files resolve.
const files = schemaFiles(dir).sort();
const ids = [];
for (const file of files) {
  current = relative(dir, file);
  try {
    const schema = JSON.parse(readFileSync(file, "utf8"));
    ajv.addSchema(schema, schema.$id ?? current);
    ids.push([current, schema.$id ?? current]);
  } catch (e) {
    problems.push(`${current}: ${e.message}`);
  }
}
for (const [name, id] of ids) {
  current = name;
  try {
    ajv.getSchema(id);
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
}

const refused = new Set(problems.map((p) => p.split(":")[0]));
for (const p of problems) console.log(p);
console.log(`ajv ${require("ajv/package.json").version} strict: ${files.length} schemas, ${refused.size} refused`);
process.exit(problems.length ? 1 : 0);
