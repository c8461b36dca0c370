// Validates custom resources against their operators' published CRD schemas, offline.
//
// Reads a JSON list of documents on stdin; prints one line per document, "OK <kind>/<name>"
// or "ERROR <kind>/<name>: <what is wrong>"; exits 1 on any error, and on a custom resource
// whose group or kind no package here knows (an unchecked document must not pass).
// Install: npm ci --prefix deploy/schemas (`make install` does it).

// Group -> the npm package compiled from that operator's CRDs (versions in package.json).
const PACKAGES = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  const pkg = PACKAGES[group];
  if (pkg === undefined) {
    throw new Error(`no schema package for group "${group}"`);
  }
  let models;
  try {
    models = await import(`${pkg}/${apiVersion}`);
  } catch {
    throw new Error(`${pkg} has no ${apiVersion}`);
  }
  // A version's index also exports helper types: only a class of this very kind will do.
  const model = models[kind];
  if (model === undefined || model.kind !== kind || model.apiVersion !== apiVersion) {
    throw new Error(`${pkg} has no kind ${kind} in ${apiVersion}`);
  }
  return model;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const docs = JSON.parse(await readStdin());
  if (!Array.isArray(docs)) {
    throw new Error("stdin: a JSON list of documents expected");
  }
  let failed = 0;
  for (const doc of docs) {
    const name = `${doc?.kind}/${doc?.metadata?.name}`;
    try {
      const Model = await modelFor(String(doc.apiVersion), String(doc.kind));
      new Model(doc).validate();
      console.log(`OK ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`ERROR ${name}: ${err.message}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(`validate.mjs: ${err.message}`);
  process.exitCode = 2;
});
