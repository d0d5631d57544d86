export const VERSION = "0.1.0";
export const ANYCABLE_GO_COMPAT = "1.6.16";
// Shaped like an anycable-go version with a modifier, so tooling that parses
// `anycable-go -v` keeps seeing the compatible upstream release first.
export const VERSION_STRING = `${ANYCABLE_GO_COMPAT}-ts${VERSION}`;
