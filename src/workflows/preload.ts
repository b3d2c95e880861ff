/**
 * Evaluated once per reusable V8 context, before any workflow exists (the bundler's
 * `preloadModules`, which ExperimentPlugin sets to this file). Whatever this module requires
 * lands in the SDK's shared module cache instead of being evaluated again by every workflow
 * run: here zod, whose ~95 modules were most of a short experiment workflow's CPU.
 *
 * The SDK deep-freezes shared modules once this has run, so zod's mutable module state must be
 * settled here: its global config (`jitless`, see schema.ts), and the lazy caches a first parse
 * fills in. zod holds no per-workflow state beyond that, so sharing it is deterministic.
 *
 * Listing `zod` itself in `preloadModules` does nothing: webpack drops an unused `require` of a
 * package marked `sideEffects`-free. This module is ours, so its require stays.
 */
import { z } from 'zod';

z.config({ jitless: true });
z.object({ id: z.string(), n: z.number().optional() }).safeParse({ id: 'warm-up', n: 1 });

export const ZOD_PRELOADED = true;
