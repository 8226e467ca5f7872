package peers;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.DefaultFileRegion;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.LineBasedFrameDecoder;
import io.netty.handler.codec.string.StringDecoder;
import java.io.File;
import java.nio.charset.StandardCharsets;

/**
 * The Netty file-protocol baseline: "NAME\n" is answered with the length as an 8-byte
 * big-endian long and a DefaultFileRegion (transferTo, i.e. sendfile), or -1.
 *
 * usage: FileServer PORT DIR [nio] [WORKERS=0]
 */
public final class FileServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        File root = new File(args[1]);
        Servers.requireNio(args.length > 2 ? args[2] : "nio");
        int workers = args.length > 3 ? Integer.parseInt(args[3]) : 0;
        Servers.serve(port, workers, new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
                ch.pipeline()
                        .addLast(new LineBasedFrameDecoder(4096))
                        .addLast(new StringDecoder(StandardCharsets.UTF_8))
                        .addLast(new SimpleChannelInboundHandler<String>() {
                            @Override
                            protected void channelRead0(ChannelHandlerContext ctx, String name) {
                                File f = new File(root, name);
                                boolean ok = !name.isEmpty() && !name.contains("/")
                                        && !name.equals("..") && f.isFile();
                                ByteBuf len = ctx.alloc().buffer(8);
                                if (!ok) {
                                    ctx.writeAndFlush(len.writeLong(-1));
                                    return;
                                }
                                ctx.write(len.writeLong(f.length()));
                                ctx.writeAndFlush(new DefaultFileRegion(f, 0, f.length()));
                            }

                            @Override
                            public void exceptionCaught(ChannelHandlerContext ctx, Throwable c) {
                                ctx.close();
                            }
                        });
            }
        });
    }
}
