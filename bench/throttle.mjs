// stdin to stdout at most BYTES_PER_SECOND: a slow location (a thin uplink, a busy NAS) for the
// fan-out cases of the benchmark. Backpressure does the rest: whoever writes to us waits.
const rate = Number(process.argv[2]);
if (!(rate > 0)) throw new Error('usage: node throttle.mjs BYTES_PER_SECOND');
const started = Date.now();
let sent = 0;
for await (const chunk of process.stdin) {
  sent += chunk.length;
  const due = started + (sent / rate) * 1000;
  if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
  if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}
