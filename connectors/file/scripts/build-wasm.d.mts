export function compileEscapeWat(): Promise<string>;
export function renderModule(base64: string): string;
