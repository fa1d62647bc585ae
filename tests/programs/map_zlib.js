// map_zlib.js - a Node.js workload for the preload tests: a large Map, Buffers
// of many sizes, zlib deflate/inflate round trips (zlib's buffers come from
// malloc), and a worker thread; deterministic output, then "ok".
'use strict';
const zlib = require('zlib');
const crypto = require('crypto');
const { Worker, isMainThread, parentPort } = require('worker_threads');

function churn(seed) {
  const m = new Map();
  let x = seed;
  for (let i = 0; i < 300000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 1;
    m.set("k" + ((x >>> 8) % 150000), { i, s: 'v'.repeat(1 + (i % 40)) });
    if (i % 4 === 0) m.delete("k" + ((x >>> 4) % 150000));
  }
  let sum = 0;
  for (const [k, v] of m) sum = (sum + k.length * 7 + v.s.length + (v.i % 11)) % 1000000007;
  return [m.size, sum];
}

if (!isMainThread) {
  parentPort.postMessage(churn(7));
} else {
  const worker = new Worker(__filename);
  worker.on('message', ([size, sum]) => {
    console.log('worker map ' + size + ' ' + sum);
    const [s2, sum2] = churn(1);
    console.log('main map ' + s2 + ' ' + sum2);
    const hash = crypto.createHash('sha256');
    let total = 0;
    for (let i = 0; i < 400; i++) {
      const n = 1 + ((i * 7919) % 300000);
      const buf = Buffer.alloc(n, i % 251);
      for (let j = 0; j < n; j += 997) buf[j] = (j + i) % 256;
      const packed = zlib.deflateSync(buf, { level: 1 + (i % 9) });
      const back = zlib.inflateSync(packed);
      if (!back.equals(buf)) throw new Error('zlib round trip ' + i);
      total += packed.length;
      hash.update(back);
    }
    const gz = zlib.gunzipSync(zlib.gzipSync(Buffer.from('x'.repeat(1 << 20))));
    console.log('zlib ' + total + ' ' + hash.digest('hex').slice(0, 16) + ' ' + gz.length);
    console.log('ok');
  });
  worker.on('error', (e) => { console.error(e); process.exit(1); });
}
