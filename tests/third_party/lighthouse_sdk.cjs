// Lighthouse's own SDK (npm `@lighthouse-web3/sdk`) against a server that
// claims to speak Lighthouse's API: list the uploads page by page with
// `lastKey`, then delete one. The SDK has no pin call; the caller makes the
// uploads first. Exits non-zero, naming the step, if the SDK refuses.
// Usage: node lighthouse_sdk.cjs BASE_URL API_KEY EXPECTED_UPLOADS
const config = require("@lighthouse-web3/sdk/dist/lighthouse.config");
const lighthouse = require("@lighthouse-web3/sdk").default;

const [base, key, expected] = process.argv.slice(2);
config.lighthouseConfig.lighthouseAPI = base;

function expect(ok, what) {
  if (!ok) {
    console.error(`unexpected: ${what}`);
    process.exit(1);
  }
}

(async () => {
  try {
    const seen = [];
    let lastKey = null;
    for (let page = 0; page < 1000; page++) {
      const { data } = await lighthouse.getUploads(key, lastKey);
      expect(Array.isArray(data.fileList), "fileList");
      expect(typeof data.totalFiles === "number", "totalFiles");
      if (data.fileList.length === 0) break;
      for (const f of data.fileList) {
        expect(typeof f.id === "string" && typeof f.cid === "string", "an upload's id and cid");
        expect(typeof f.fileSizeInBytes === "string", "fileSizeInBytes as a string");
        seen.push(f);
      }
      lastKey = data.fileList[data.fileList.length - 1].id;
    }
    console.log(`uploads: ${seen.length}`);
    expect(seen.length === Number(expected), `${expected} uploads`);
    const { data } = await lighthouse.deleteFile(key, seen[0].id);
    console.log(`delete: ${JSON.stringify(data)}`);
    expect(typeof data.message === "string", "the delete's message");
    const after = await lighthouse.getUploads(key, null);
    expect(after.data.totalFiles === seen.length - 1, "one upload fewer");
  } catch (e) {
    console.error(`the SDK failed: ${e && e.message}`);
    process.exit(1);
  }
})();
