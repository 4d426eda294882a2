// Pinata's own SDK (npm `pinata`) against a server that claims to speak
// Pinata's v3 Files API: pin by CID, read the queue, list the file by CID,
// delete it. Exits non-zero, naming the step, if the SDK refuses an answer.
// Usage: node pinata_sdk.cjs BASE_URL JWT CID
const { PinataSDK } = require("pinata");

const [base, jwt, cid] = process.argv.slice(2);
const pinata = new PinataSDK({ pinataJwt: jwt, endpointUrl: `${base}/v3` });

async function step(name, run) {
  try {
    const value = await run();
    console.log(`${name}: ${JSON.stringify(value)}`);
    return value;
  } catch (e) {
    console.error(`${name} failed: ${e && e.message}`);
    process.exit(1);
  }
}

function expect(ok, what) {
  if (!ok) {
    console.error(`unexpected: ${what}`);
    process.exit(1);
  }
}

(async () => {
  const queued = await step("pin by CID", () =>
    pinata.upload.public.cid(cid).name("sdk").keyvalues({ team: "web" }),
  );
  expect(queued.cid === cid && typeof queued.id === "string", "the queued request");
  const jobs = await step("queue", () => pinata.files.public.queue().cid(cid));
  expect(Array.isArray(jobs.jobs), "the queue's jobs");
  let files = [];
  for (let i = 0; i < 100 && files.length === 0; i++) {
    files = (await step("files", () => pinata.files.public.list().cid(cid))).files;
    if (files.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  expect(files.length === 1 && files[0].keyvalues.team === "web", "one file, with its keyvalues");
  const deleted = await step("delete", () => pinata.files.public.delete([files[0].id]));
  expect(deleted.length === 1 && deleted[0].id === files[0].id, "the delete");
  const after = await step("files after", () => pinata.files.public.list().cid(cid));
  expect(after.files.length === 0, "no file left");
})();
