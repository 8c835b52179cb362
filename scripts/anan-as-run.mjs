#!/usr/bin/env node
// Runs PVM programs in anan-as (npm `@fluffylabs/anan-as`) for capbox's
// differential harness (`scripts/diff-anan-as.sh`).
//
// Reads JSON lines from stdin, one program each:
//   {"program": "<blob hex, generic format, no metadata>",
//    "regs": ["<u64 decimal>", x13], "gas": "<i64 decimal>",
//    "pages": [{"address": n, "length": n, "writable": bool}],
//    "dump": [{"address": n, "length": n}], "exits": n}
// and writes one JSON line per program, in order:
//   {"exits": [{"status": n, "code": n, "pc": n, "gas": "<i64>",
//               "regs": ["<u64>", x13], "memory": "<hex of the dump ranges>"}]}
// or {"error": "<why>"} when anan-as refuses the input. A host call
// (status 3) is resumed at its next pc with the gas it left, up to
// `exits` stops in all.
//
// The anan-as module is loaded from the path in ANAN_AS_MODULE (the
// package's dist/build/release.js).

import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const modulePath = process.env.ANAN_AS_MODULE;
if (!modulePath) {
	console.error("ANAN_AS_MODULE must name anan-as's dist/build/release.js");
	process.exit(2);
}
// anan-as prints notices with console.log; keep stdout for results only.
console.log = (...args) => console.error(...args);
console.warn = (...args) => console.error(...args);
const vm = await import(pathToFileURL(modulePath).href);

const HOST = 3;
const GENERIC = vm.InputKind.Generic;
const NO_METADATA = vm.HasMetadata.No;

function hexToBytes(hex) {
	if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) {
		throw new Error("program: not a hex string");
	}
	const out = new Array(hex.length / 2);
	for (let i = 0; i < out.length; i++) {
		out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
	}
	return out;
}

function bytesToHex(bytes) {
	return Buffer.from(bytes).toString("hex");
}

function runOne(input) {
	const program = hexToBytes(input.program);
	if (!Array.isArray(input.regs) || input.regs.length !== 13) {
		throw new Error("regs: need 13 values");
	}
	const regs = input.regs.map((r) => BigInt.asUintN(64, BigInt(r)));
	const gas = BigInt(input.gas);
	const pages = input.pages.map((p) => ({
		address: p.address >>> 0,
		length: p.length >>> 0,
		access: p.writable ? 2 : 1,
	}));
	const prepared = vm.prepareProgram(GENERIC, NO_METADATA, program, regs, pages, [], [], 4);
	const id = vm.pvmStart(prepared, false);
	const exits = [];
	try {
		let pc = 0;
		let left = gas;
		while (exits.length < input.exits) {
			const pause = vm.pvmResume(id, left, pc, false);
			if (!pause) {
				throw new Error("pvmResume returned null");
			}
			const memory = [];
			for (const range of input.dump) {
				const bytes = vm.pvmReadMemory(id, range.address >>> 0, range.length >>> 0);
				if (!bytes) {
					throw new Error(`cannot read memory at ${range.address}`);
				}
				memory.push(bytesToHex(bytes));
			}
			exits.push({
				status: pause.status,
				code: pause.exitCode,
				pc: pause.pc,
				gas: pause.gas.toString(),
				regs: pause.registers.map((r) => BigInt.asUintN(64, BigInt(r)).toString()),
				memory: memory.join(""),
			});
			if (pause.status !== HOST) {
				break;
			}
			pc = pause.nextPc;
			left = pause.gas;
		}
	} finally {
		vm.pvmDestroy(id);
	}
	return { exits };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
for await (const line of lines) {
	if (line.trim() === "") {
		continue;
	}
	let out;
	try {
		out = runOne(JSON.parse(line));
	} catch (e) {
		out = { error: String(e?.message ?? e) };
	}
	process.stdout.write(`${JSON.stringify(out)}\n`);
}
