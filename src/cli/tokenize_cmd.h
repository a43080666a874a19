// `tide tokenize`: JSON lines on stdin -> token ids (or text with --decode) on stdout.
#pragma once

namespace tide {

// argv[0] is "tokenize". Returns the process exit code: 0 when every line was handled
// (a bad line yields {"error": ...} on its output line), 2 for bad flags or a model
// that cannot be loaded.
int RunTokenize(int argc, char** argv);

}  // namespace tide
