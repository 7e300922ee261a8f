#!/usr/bin/env node
// Keel runs its TypeScript sources directly through tsx, so there is no build step to forget.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
