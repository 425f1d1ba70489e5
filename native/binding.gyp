{
  "targets": [
    {
      "target_name": "reflex_native",
      "sources": ["src/addon.cc", "src/can.cc", "src/notify.cc", "src/pty.cc", "src/ptybaud.cc", "src/serial_io.cc", "src/rt.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
