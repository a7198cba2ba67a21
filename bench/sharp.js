// sharp.js - the standard rendition set (bench/renditions.conf) made with
// sharp from images held in memory: processing only, no I/O in the timed
// part. THREADS lanes each take the next image from a shared list, and
// sharp.concurrency(1) gives each image one libvips thread, as imgsink's job
// threads do (set UV_THREADPOOL_SIZE=THREADS too, so the lanes really run
// side by side).
//
//   node bench/sharp.js [-t THREADS] [-r REPEAT] [-m source|cascade] [-R RENDITIONS] FILE...
//
// -R takes another rendition set in imgsink's `renditions` syntax
// (name=WxH/jpeg|webp/QUALITY,...; the small-image workload's), the first
// (largest) being the one the cascade decodes into.
//
// Modes: "source" makes each rendition from the source buffer (shrink-on-load
// every time: how sharp is usually used); "cascade" decodes once into the
// largest box as raw pixels and cuts the smaller renditions from that, as
// imgsink does. Prints one line of JSON like bench/limit.
'use strict';
const fs = require('fs');
const sharp = require('sharp');

let RENDITIONS = [
  { name: 'large', w: 2048, h: 2048, format: 'webp', quality: 80 },
  { name: 'medium', w: 512, h: 512, format: 'jpeg', quality: 82 },
  { name: 'thumb', w: 128, h: 128, format: 'jpeg', quality: 80 },
];

// name=WxH/jpeg|webp/Q,... (imgsink's syntax); null if malformed.
function parseRenditions(spec) {
  const out = [];
  for (const r of spec.split(',')) {
    const m = /^([^=]+)=(\d+)x(\d+)\/(jpeg|webp)\/(\d+)$/.exec(r);
    if (!m) return null;
    out.push({ name: m[1], w: +m[2], h: +m[3], format: m[4], quality: +m[5] });
  }
  return out.length ? out : null;
}

function args(argv) {
  const o = { threads: 2, repeat: 1, mode: 'source', files: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-t') o.threads = parseInt(argv[++i], 10);
    else if (argv[i] === '-r') o.repeat = parseInt(argv[++i], 10);
    else if (argv[i] === '-m') o.mode = argv[++i];
    else if (argv[i] === '-R') o.renditions = parseRenditions(argv[++i] || '');
    else o.files.push(argv[i]);
  }
  if (!o.files.length || !(o.threads >= 1) || !(o.repeat >= 1) ||
      !['source', 'cascade'].includes(o.mode) || o.renditions === null) {
    console.error('usage: sharp.js [-t THREADS] [-r REPEAT] [-m source|cascade] [-R RENDITIONS] FILE...');
    process.exit(2);
  }
  if (o.renditions) RENDITIONS = o.renditions;
  return o;
}

// fit inside the box, never enlarge; JPEG with optimised Huffman tables
// (as imgsink's optimize_coding), WebP at the default effort; sharp writes
// no metadata unless asked to.
function encode(pipe, r) {
  pipe = pipe.resize(r.w, r.h, { fit: 'inside', withoutEnlargement: true });
  return r.format === 'webp'
    ? pipe.webp({ quality: r.quality }).toBuffer()
    : pipe.jpeg({ quality: r.quality, optimiseCoding: true }).toBuffer();
}

async function fromSource(buf) {
  let bytes = 0;
  for (const r of RENDITIONS) bytes += (await encode(sharp(buf).rotate(), r)).length;
  return bytes;
}

async function cascade(buf) {
  const big = RENDITIONS[0];
  const { data, info } = await sharp(buf)
    .rotate()
    .resize(big.w, big.h, { fit: 'inside', withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  let bytes = 0;
  for (const r of RENDITIONS) bytes += (await encode(sharp(data, raw), r)).length;
  return bytes;
}

async function main() {
  const o = args(process.argv.slice(2));
  sharp.concurrency(1);
  sharp.cache(false);
  const inputs = [];
  let mpix = 0;
  for (const f of o.files) {
    const buf = fs.readFileSync(f);
    const m = await sharp(buf).metadata();
    mpix += (m.width * m.height) / 1e6;
    inputs.push(buf);
  }
  const total = inputs.length * o.repeat;
  const run = o.mode === 'cascade' ? cascade : fromSource;
  let next = 0;
  let outBytes = 0;
  const t0 = process.hrtime.bigint();
  const lane = async () => {
    for (let job = next++; job < total; job = next++) {
      const bytes = await run(inputs[job % inputs.length]);
      outBytes += bytes;
    }
  };
  await Promise.all(Array.from({ length: o.threads }, lane));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({
    contender: `sharp-${o.mode}`, threads: o.threads, images: total, failures: 0,
    seconds: +s.toFixed(3), images_per_s: +(total / s).toFixed(3),
    megapixels_per_s: +((mpix * o.repeat) / s).toFixed(2), output_bytes: outBytes,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
