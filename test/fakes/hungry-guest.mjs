// A sandbox guest whose own JavaScript heap grows without end (what a dump of a huge guest value does).
const kept = [];
for (;;) kept.push(new Array(100_000).fill({ x: kept.length }));
