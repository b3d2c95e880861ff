/** The `worker` command's hardware flags: `--hardware FILE` (profile fields), then `--class NAME`. */
import { readOverridesFile, type ProfileOverrides } from '../../hardware/detect';
import type { HardwareOptions } from '../../hardware/fleet';
import { CLASS_NAME } from '../../shared/hardware';
import { intOption, stringOption, type ParsedArgs } from '../args';
import { UsageError } from '../errors';

/** The `worker` command's hardware options: `--hardware FILE` fields, then `--class`. */
export function hardwareOptions(parsed: ParsedArgs): HardwareOptions {
  const file = stringOption(parsed, 'hardware');
  let overrides: ProfileOverrides = {};
  try {
    if (file !== undefined) overrides = readOverridesFile(file);
    const className = stringOption(parsed, 'class');
    if (className !== undefined && !CLASS_NAME.test(className)) {
      throw new Error(`--class: expected lowercase letters, digits, ".", "_", "-" (at most 64), such as gpu-h100x8, received ${JSON.stringify(className)}`);
    }
    if (className !== undefined) overrides = { ...overrides, className };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { overrides, cpuSlots: intOption(parsed, 'max-concurrent-activities', 1, 1000) };
}
