import { configJsonSchema } from '../config/schema.js';

export async function runSchema(): Promise<number> {
  process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return 0;
}
